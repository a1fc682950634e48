# syntax=docker/dockerfile:1.7
# Static images of the stack's binaries, one target each (no cgo: the SQLite driver is pure Go):
#   docker build --target gateway     -t shopgate/gateway .
#   docker build --target orderd      -t shopgate/orderd .
#   docker build --target paymentd    -t shopgate/paymentd .
#   docker build --target inventoryd  -t shopgate/inventoryd .
#   docker build --target storefrontd -t shopgate/storefrontd .
# VERSION and COMMIT are what -version and the build_info metric report (internal/buildinfo; the
# build context has no .git, so the go command cannot stamp them): pass them as `make build` does,
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) \
#     --build-arg COMMIT=$(git rev-parse HEAD) --target gateway -t shopgate/gateway .
# Without them the binaries report version "(devel)" and commit "unknown".
# Each runs as the distroless "nonroot" user (65532) with CA certificates and nothing else: no
# shell, no package manager. `make check-deploy` lints this file (BuildKit's own rules).

ARG GO_VERSION=1.26.8

# One build of every binary, shared by the targets below; the module and build caches survive
# between builds (BuildKit cache mounts), and the source is bind-mounted, not copied.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
ARG TARGETOS
ARG TARGETARCH
ENV CGO_ENABLED=0
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=bind,source=go.mod,target=go.mod \
    --mount=type=bind,source=go.sum,target=go.sum \
    go mod download
# The Makefile's LDFLAGS; empty values leave internal/buildinfo to its fallbacks. Declared after
# the download: a new commit's build arguments invalidate the build step only, not the modules.
ARG VERSION
ARG COMMIT
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    --mount=type=bind,target=. \
    GOOS=$TARGETOS GOARCH=$TARGETARCH go build -trimpath -o /out/ \
      -ldflags="-s -w -X github.com/acme/shopgate/internal/buildinfo.version=${VERSION} -X github.com/acme/shopgate/internal/buildinfo.commit=${COMMIT}" \
      ./cmd/gateway ./cmd/orderd ./cmd/paymentd ./cmd/inventoryd ./cmd/storefrontd

# distroless/static: CA certificates, /etc/passwd with nonroot, tzdata; no libc is needed.
FROM gcr.io/distroless/static-debian12:nonroot AS runtime
USER 65532:65532

FROM runtime AS orderd
COPY --from=build /out/orderd /usr/local/bin/orderd
EXPOSE 9101
ENTRYPOINT ["/usr/local/bin/orderd"]

FROM runtime AS paymentd
COPY --from=build /out/paymentd /usr/local/bin/paymentd
EXPOSE 9102
ENTRYPOINT ["/usr/local/bin/paymentd"]

FROM runtime AS inventoryd
COPY --from=build /out/inventoryd /usr/local/bin/inventoryd
EXPOSE 9103
ENTRYPOINT ["/usr/local/bin/inventoryd"]

FROM runtime AS storefrontd
COPY --from=build /out/storefrontd /usr/local/bin/storefrontd
EXPOSE 9104
ENTRYPOINT ["/usr/local/bin/storefrontd"]

# The last stage is what a plain `docker build .` makes: the gateway.
FROM runtime AS gateway
COPY --from=build /out/gateway /usr/local/bin/gateway
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/gateway"]
