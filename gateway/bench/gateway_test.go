package bench

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/linebuf"
	"github.com/acme/shopgate/gateway/server"
	"github.com/acme/shopgate/internal/devkey"
	"github.com/acme/shopgate/internal/shopapi"
	"go.opentelemetry.io/otel/trace"
)

// startGateway runs this gateway (c) with its whole chain in front of upstream: JWT
// authentication against the development key (the token cache on, its default, unless
// noCache), the in-memory rate limiter (with a limit the benchmark cannot reach, so that every
// request pays for the check and none is refused), CORS, global IP rules (a deny list the
// loopback client is not on), breakers, deadlines, retries, access log (JSON lines, buffered
// as cmd/gateway writes them, then discarded) and metrics. It returns the base URL and a
// customer token.
func startGateway(tb testing.TB, upstream string, noCache bool) (baseURL, token string) {
	tb.Helper()
	return startTracedGateway(tb, upstream, noCache, nil)
}

// startTracedGateway is startGateway with tracing by tp (nil: off, as startGateway).
func startTracedGateway(tb testing.TB, upstream string, noCache bool, tp trace.TracerProvider) (baseURL, token string) {
	tb.Helper()
	key, err := devkey.LoadOrCreate(filepath.Join(tb.TempDir(), "devkeys"))
	if err != nil {
		tb.Fatal(err)
	}
	src := key.AuthSource()
	yaml := fmt.Sprintf(`
listen: 127.0.0.1:0
upstreams:
  shop.inventory.v1.InventoryService: {addresses: [%q]}
  shop.order.v1.OrderService: {addresses: [%q]}
defaults:
  rate_limit: {requests: 1000000000, per: 1s, burst: 1000000000}
cors: {allowed_origins: ["https://shop.example"]}
ip_rules: {deny: ["192.0.2.0/24", "198.51.100.0/24"]}
auth:
  cache: {disabled: %t}
  sources:
    - issuer: %q
      audiences: [%q]
      algorithms: [EdDSA]
      jwks_file: %q
`, upstream, upstream, noCache, src.Issuer, src.Audiences[0], src.JWKSFile)
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		tb.Fatal(err)
	}
	logger := slog.New(slog.NewJSONHandler(io.Discard, nil))
	access := linebuf.New(io.Discard, linebuf.Options{}) // buffered, as cmd/gateway wires it
	gw, err := server.New(cfg, server.Options{Logger: logger, AccessLogWriter: access, Services: shopapi.Services(), TracerProvider: tp})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = gw.Close(); _ = access.Close() })
	token, err = key.Mint(devkey.Claims{Subject: "alice", Roles: []string{"customer"}, TTL: time.Hour})
	if err != nil {
		tb.Fatal(err)
	}
	return serveHTTP(tb, gw.Handler()), token
}
