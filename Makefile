# Every developer action has a target; `make help` lists them.
# Tools (buf and the protoc plugins) are pinned here and built from source by `go install` into
# .tools/, one folder per version, on first use. Nothing else needs to be installed.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO ?= go

BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
GRPC_GATEWAY_VERSION       := v2.32.0

TOOLS_DIR   := $(CURDIR)/.tools
BUF         := $(TOOLS_DIR)/buf-$(BUF_VERSION)/buf
PLUGINS_DIR := $(TOOLS_DIR)/plugins-go$(PROTOC_GEN_GO_VERSION)-grpc$(PROTOC_GEN_GO_GRPC_VERSION)-gw$(GRPC_GATEWAY_VERSION)
PLUGINS     := $(PLUGINS_DIR)/protoc-gen-go $(PLUGINS_DIR)/protoc-gen-go-grpc \
               $(PLUGINS_DIR)/protoc-gen-grpc-gateway $(PLUGINS_DIR)/protoc-gen-openapiv2

# What the binaries' -version and build_info say (internal/buildinfo).
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo unknown)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS := -X github.com/acme/shopgate/internal/buildinfo.version=$(VERSION) -X github.com/acme/shopgate/internal/buildinfo.commit=$(COMMIT)

# The tests' own time limit; the services they need (Redis, NATS) are described in README.md.
TEST_FLAGS ?= -race -count=1 -timeout 20m
# `make bench` runs the benchmark binary BENCH_RUNS times, each run measuring every front once
# in turn (a, b, c, d, BENCH_FLAGS) and then b and c in alternating blocks (BenchmarkPaired,
# PAIRED_FLAGS, on which the 1.10x target is checked: three seconds per request kind, so that a
# run's ratio does not hang on a few collections or slow spells of this shared machine);
# benchratio reports the medians.
BENCH_RUNS   ?= 5
BENCH_FLAGS  ?= -test.run '^$$' -test.bench 'Get|Post' -test.benchmem -test.count 1 -test.benchtime 1s
PAIRED_FLAGS ?= -test.run '^$$' -test.bench Paired -test.count 1 -test.benchtime 3s

# The protos with their comments (protoc-gen-go drops them): the titles and descriptions of the
# gateway's OpenAPI document. Written by `make generate`, checked by `make check-generate`.
SOURCE_INFO := internal/shopapi/sourceinfo.binpb

# Against what `make breaking` compares the protos (a buf input) and their HTTP API (a git ref,
# `gateway check -against`); CI sets both to the merge base with main (.ci/run).
BREAKING_AGAINST ?= .git\#branch=main
API_BASE         ?= main

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: tools
tools: $(BUF) $(PLUGINS) ## Build the pinned buf and protoc plugins into .tools/ (once per version).

$(BUF):
	@echo "building buf $(BUF_VERSION) into $(@D) (first time only, a few minutes)"
	GOBIN=$(@D) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)

$(PLUGINS_DIR)/protoc-gen-go:
	GOBIN=$(@D) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(PLUGINS_DIR)/protoc-gen-go-grpc:
	GOBIN=$(@D) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(PLUGINS_DIR)/protoc-gen-grpc-gateway:
	GOBIN=$(@D) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway@$(GRPC_GATEWAY_VERSION)
$(PLUGINS_DIR)/protoc-gen-openapiv2:
	GOBIN=$(@D) $(GO) install github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-openapiv2@$(GRPC_GATEWAY_VERSION)

# buf.gen.yaml also runs this project's own plugin, cmd/protoc-gen-shopgate-registry, with
# `go run` (the service registry, gen/registry): nothing to build for it here.
.PHONY: generate
generate: tools ## Regenerate gen/ from proto/ with buf (and the protos' comments, for /openapi.json).
	PATH="$(PLUGINS_DIR):$$PATH" $(BUF) generate
	$(BUF) build proto --exclude-imports --as-file-descriptor-set -o $(SOURCE_INFO)

.PHONY: check-generate
check-generate: generate ## Regenerate and fail if gen/ differs from what is committed.
	@if [ -n "$$(git status --porcelain -- gen $(SOURCE_INFO))" ]; then \
	  echo "gen/ is out of date with proto/: run 'make generate' and commit the result"; \
	  git status --short -- gen $(SOURCE_INFO); git --no-pager diff --stat -- gen $(SOURCE_INFO); exit 1; fi
	@echo "gen/ is current"

.PHONY: lint
lint: tools ## buf lint, buf format check, gofmt, go vet and gateway check (routes, policies, example config).
	$(BUF) lint
	$(BUF) format proto --diff --exit-code
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/') 2>/dev/null); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) vet -tags tracingbench ./gateway/bench/
	$(GO) run ./cmd/gateway check -config gateway/config/example.yaml

.PHONY: fmt
fmt: tools ## Format the protos (buf format -w) and the Go code (gofmt -w), gen/ aside.
	$(BUF) format proto -w
	gofmt -w $$(git ls-files '*.go' | grep -v '^gen/')

.PHONY: breaking
breaking: tools ## buf breaking against $(BREAKING_AGAINST); the HTTP API against $(API_BASE) (see README "Checking a change").
	@if $(BUF) build '$(BREAKING_AGAINST)' -o /dev/null >/dev/null 2>&1; then \
	  $(BUF) breaking --against '$(BREAKING_AGAINST)'; \
	else echo "breaking: $(BREAKING_AGAINST) has no protos to compare with; skipped"; fi
	@if git rev-parse -q --verify '$(API_BASE)^{commit}' >/dev/null; then \
	  echo "$(GO) run ./cmd/gateway check -against $(API_BASE)"; $(GO) run ./cmd/gateway check -against '$(API_BASE)'; \
	else echo "breaking: $(API_BASE) is not a git ref; HTTP API comparison skipped"; fi

# promtool: Debian/Ubuntu `apt-get install prometheus`; or any Prometheus release's promtool.
PROMTOOL ?= promtool

.PHONY: check-alerts
check-alerts: ## Check the Prometheus alert rules (deploy/prometheus) and run their unit tests with promtool.
	@command -v $(PROMTOOL) >/dev/null || { echo "check-alerts needs promtool (Debian/Ubuntu: apt-get install prometheus)"; exit 1; }
	$(PROMTOOL) check rules deploy/prometheus/alerts.yml
	$(PROMTOOL) test rules deploy/prometheus/alerts_test.yml

.PHONY: build
build: ## Build every binary into bin/ (-version prints VERSION, default `git describe`).
	$(GO) build -ldflags "$(LDFLAGS)" -o bin/ ./cmd/...

# test needs the tools: cmd/internal/newservicetest runs `make generate` in a copy of the module.
.PHONY: test
test: tools ## Run every test with the race detector (needs Redis 127.0.0.1:6379, NATS 127.0.0.1:4222, PostgreSQL 127.0.0.1:5432).
	$(GO) test $(TEST_FLAGS) ./...

# The scale-out acceptance test (cmd/internal/scaleouttest): two gateways before two replicas of
# each service on PostgreSQL, with Kafka (kfake) or a NATS cluster at R3 and a Redis Cluster.
.PHONY: test-scaleout
test-scaleout: ## The scale-out test alone (needs PostgreSQL at 127.0.0.1:5432, redis-server, NATS; a few minutes).
	$(GO) test $(TEST_FLAGS) -v -run TestScaleOut ./cmd/internal/scaleouttest/

# `make bench-saga` confirms SAGA_ORDERS orders on each stack (BenchmarkSaga), SAGA_RUNS times,
# with SAGA_CLIENTS clients at once, and prints the stacks' median orders/s side by side with
# their ratio to the embedded default.
SAGA_ORDERS  ?= 3000
SAGA_RUNS    ?= 1
SAGA_CLIENTS ?= 64

.PHONY: bench-saga
bench-saga: ## Confirmed orders/s end to end: the embedded default vs PostgreSQL + Kafka (and NATS R3), side by side.
	$(GO) test -c -o bin/scaleout.test ./cmd/internal/scaleouttest/
	cd cmd/internal/scaleouttest && ../../../bin/scaleout.test -test.run '^$$' -test.bench '^BenchmarkSaga$$' \
	  -test.benchtime $(SAGA_ORDERS)x -test.count $(SAGA_RUNS) -saga.clients $(SAGA_CLIENTS)

.PHONY: run
run: ## Run the whole stack in one process: gateway on 127.0.0.1:8080, data under ./data.
	$(GO) run ./cmd/shop -data ./data

.PHONY: bench
bench: ## Benchmarks: direct gRPC vs bare grpc-gateway vs this gateway, side by side.
	$(GO) test -c -o bin/bench.test ./gateway/bench/
	rm -f bench.out
	for i in $$(seq $(BENCH_RUNS)); do \
		(cd gateway/bench && ../../bin/bench.test $(BENCH_FLAGS) && ../../bin/bench.test $(PAIRED_FLAGS)) | tee -a bench.out || exit 1; \
	done
	$(GO) run ./cmd/benchratio < bench.out

.PHONY: bench-tracing
bench-tracing: ## Tracing's cost: the gateway with tracing off, default sampler, 100% sampled, side by side.
	$(GO) test -c -tags tracingbench -o bin/bench-tracing.test ./gateway/bench/
	cd gateway/bench && ../../bin/bench-tracing.test -test.run '^$$' -test.bench Tracing -test.benchtime 3s -test.count $(BENCH_RUNS) \
	  | grep -E 'Tracing|^ok|FAIL'

# Swagger UI for GET /docs, vendored into gateway/openapi/ui (see its README.md): the npm package's
# version and the sha512 integrity its registry publishes for that version's tarball.
SWAGGER_UI_VERSION   := 5.35.0
SWAGGER_UI_INTEGRITY := sha512-U06rpMtW9V3XPGOBeamTUSr0Z09jMX4IJuANpE/EZbAhw0G8CgwrzU4YmXkn/h0wCDNsXdGarTNNHC3sU8yVUQ==
SWAGGER_UI_DIR       := gateway/openapi/ui
SWAGGER_UI_FILES     := swagger-ui-bundle.js swagger-ui-bundle.js.LICENSE.txt swagger-ui.css LICENSE NOTICE

.PHONY: vendor-docs-ui
vendor-docs-ui: ## Re-fetch the pinned swagger-ui-dist from npm, check it, copy the files /docs serves.
	tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	(cd "$$tmp" && npm pack --silent swagger-ui-dist@$(SWAGGER_UI_VERSION) >/dev/null); \
	tgz="$$tmp/swagger-ui-dist-$(SWAGGER_UI_VERSION).tgz"; \
	got="sha512-$$(openssl dgst -sha512 -binary "$$tgz" | base64 -w0)"; \
	if [ "$$got" != "$(SWAGGER_UI_INTEGRITY)" ]; then echo "swagger-ui-dist $(SWAGGER_UI_VERSION): integrity $$got, want $(SWAGGER_UI_INTEGRITY)"; exit 1; fi; \
	tar -xzf "$$tgz" -C "$$tmp"; \
	(cd "$$tmp/package" && sha256sum -c --quiet "$(CURDIR)/$(SWAGGER_UI_DIR)/SHA256SUMS"); \
	for f in $(SWAGGER_UI_FILES); do cp "$$tmp/package/$$f" $(SWAGGER_UI_DIR)/; done
	@echo "$(SWAGGER_UI_DIR): swagger-ui-dist $(SWAGGER_UI_VERSION), integrity and SHA256SUMS checked"

# `make check-deploy` (deploy/validate, its own module): the Kubernetes release whose OpenAPI
# schemas (api/openapi-spec of the Go module k8s.io/kubernetes) the manifests are checked
# against, with that module's hash; kustomize renders them (kubectl's own, else this version).
K8S_VERSION       := v1.37.2
K8S_MODULE_SUM    := h1:A2VDEiObzkYqFTKhSsn0ZEb0RlLEXpHWj93gi2HqEwE=
KUSTOMIZE_VERSION := v5.5.0
KUSTOMIZE         ?= $(if $(shell command -v kubectl),kubectl kustomize,$(GO) run sigs.k8s.io/kustomize/kustomize/v5@$(KUSTOMIZE_VERSION) build)
DEPLOY_OUT        := bin/deploy
DEPLOY_EXTERNAL   := Secret/passport-keys,Secret/redis,Secret/shop-database,Secret/shop-broker-auth,ConfigMap/passport-jwks
IMAGE_BINARIES    := gateway orderd paymentd inventoryd storefrontd
DEPLOY_FIXTURES   := deploy/validate/testdata

.PHONY: check-deploy
check-deploy: ## Render deploy/k8s, validate it offline, lint the Dockerfile, build its static binaries.
	@mkdir -p $(DEPLOY_OUT)/static
	for k in base overlays/dev overlays/production; do \
	  $(KUSTOMIZE) deploy/k8s/$$k > $(DEPLOY_OUT)/$$(basename $$k).yaml; done
	CGO_ENABLED=0 $(GO) build -trimpath -o $(DEPLOY_OUT)/static/ $(addprefix ./cmd/,$(IMAGE_BINARIES))
	cd deploy/validate && $(GO) run . -kubernetes $(K8S_VERSION) -kubernetes-sum $(K8S_MODULE_SUM) \
	  -dockerfile $(CURDIR)/Dockerfile -gateway $(CURDIR)/$(DEPLOY_OUT)/static/gateway -repo $(CURDIR) \
	  -static $(CURDIR)/$(DEPLOY_OUT)/static -external $(DEPLOY_EXTERNAL) \
	  $(CURDIR)/$(DEPLOY_OUT)/base.yaml $(CURDIR)/$(DEPLOY_OUT)/dev.yaml $(CURDIR)/$(DEPLOY_OUT)/production.yaml
	@for k in dev production; do \
	  if ! diff -q <(grep -v '^#' $(DEPLOY_FIXTURES)/$$k.yaml) $(DEPLOY_OUT)/$$k.yaml >/dev/null; then \
	    echo "$(DEPLOY_FIXTURES)/$$k.yaml is not the $$k overlay as rendered now: run 'make deploy-fixture' and commit it"; exit 1; fi; done

.PHONY: deploy-fixture
deploy-fixture: ## Re-render the dev and production overlays into the validator's test fixtures (after changing deploy/k8s).
	for k in dev production; do \
	  { echo "# The $$k overlay as \`kubectl kustomize deploy/k8s/overlays/$$k\` rendered it: the fixture the"; \
	    echo "# tests break one way at a time. Regenerate with \`make deploy-fixture\` when the manifests change."; \
	    $(KUSTOMIZE) deploy/k8s/overlays/$$k; } > $(DEPLOY_FIXTURES)/$$k.yaml.tmp && mv $(DEPLOY_FIXTURES)/$$k.yaml.tmp $(DEPLOY_FIXTURES)/$$k.yaml || exit 1; done

.PHONY: test-deploy
test-deploy: ## The tests of deploy/validate (its own module).
	cd deploy/validate && K8S_VERSION=$(K8S_VERSION) K8S_MODULE_SUM=$(K8S_MODULE_SUM) $(GO) test $(TEST_FLAGS) ./...

.PHONY: clean
clean: ## Remove build output (not the tool cache).
	rm -rf bin bench.out
