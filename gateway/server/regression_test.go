package server

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestClientDeadlineDoesNotOpenTheBreaker: a client whose Grpc-Timeout runs out on a slow
// upstream gets its 504, but one client's impatience is not the upstream's failure: the
// breaker stays closed and the next caller is served. The route's own timeout, by contrast,
// counts.
func TestClientDeadlineDoesNotOpenTheBreaker(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		header   http.Header
		wantOpen bool
	}{
		{"the client's Grpc-Timeout", http.Header{"Grpc-Timeout": {"20m"}}, false},
		{"the route's timeout", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			up := startBackend(t)
			slow := make(chan struct{})
			up.setBehave(func(ctx context.Context, _ string) error {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-slow:
					return nil
				}
			})
			g := startGateway(t, baseYAML(up.addr, `
breaker: {consecutive_failures: 3, open_timeout: 1h}
routes:
  shop.inventory.v1.InventoryService/GetItem: {timeout: 200ms}
`), Options{Logger: discardLogger()})
			g.waitReady(t)
			for range 3 { // the threshold
				r := do(t, nil, "GET", g.url+"/v1/inventory/items/sku-1", nil, tt.header)
				if r.status != http.StatusGatewayTimeout {
					t.Fatalf("slow call: %d %s, want 504", r.status, r.body)
				}
			}
			open := g.breakers.States()["/shop.inventory.v1.InventoryService/GetItem"] == "open"
			if open != tt.wantOpen {
				t.Fatalf("breaker open = %v after 3 timeouts, want %v", open, tt.wantOpen)
			}
			close(slow)
			r := do(t, nil, "GET", g.url+"/v1/inventory/items/sku-1", nil, nil)
			if want := map[bool]int{false: 200, true: 503}[tt.wantOpen]; r.status != want {
				t.Fatalf("next caller: %d %s, want %d", r.status, r.body, want)
			}
		})
	}
}

// TestReloadKeepsQuotas: a caller who used up its limit is still limited after a SIGHUP reload
// of the same file; a reload is not a way to reset quotas.
func TestReloadKeepsQuotas(t *testing.T) {
	t.Parallel()
	up := startBackend(t)
	yaml := baseYAML(up.addr, `
routes:
  shop.inventory.v1.InventoryService/GetItem: {rate_limit: {requests: 2, per: 1h, burst: 2}}
`)
	g := startGateway(t, yaml, Options{Logger: discardLogger()})
	g.waitReady(t)
	get := func() int { return do(t, nil, "GET", g.url+"/v1/inventory/items/sku-1", nil, nil).status }
	for i := range 2 {
		if s := get(); s != 200 {
			t.Fatalf("request %d: %d", i, s)
		}
	}
	if s := get(); s != http.StatusTooManyRequests {
		t.Fatalf("third request: %d, want 429", s)
	}
	if err := g.Reload(parse(t, yaml)); err != nil {
		t.Fatal(err)
	}
	if s := get(); s != http.StatusTooManyRequests {
		t.Fatalf("after reloading the same file: %d, want 429 (quota kept)", s)
	}
	// a larger max_keys builds a new store: documented as resetting the in-memory quotas.
	if err := g.Reload(parse(t, strings.Replace(yaml, "routes:", "rate_limiting: {max_keys: 5000}\nroutes:", 1))); err != nil {
		t.Fatal(err)
	}
	if s := get(); s != 200 {
		t.Fatalf("after changing max_keys: %d, want 200 (a new store)", s)
	}
}

// TestReloadChangesRetries: retry policies are part of the upstream connections' service
// config, so a reload that changes them dials new connections (and one that does not keeps
// the old ones). A GET made non-idempotent by a reload is no longer retried; the retry
// section's max_attempts takes effect without a restart.
func TestReloadChangesRetries(t *testing.T) {
	be := startBackend(t)
	// throttling loose enough that the test's own failures never stop the retries
	retrying := baseYAML(be.addr, "retry: {max_attempts: 3, initial_backoff: 1ms, max_backoff: 2ms, throttling: {max_tokens: 1000}}\n")
	g := startGateway(t, retrying, Options{Logger: discardLogger()})
	g.waitReady(t)
	// attemptsOf counts the attempts of one GET whose upstream fails every time with UNAVAILABLE.
	attemptsOf := func() int {
		var n atomic.Int32
		be.setBehave(func(context.Context, string) error {
			n.Add(1)
			return status.Error(codes.Unavailable, "restarting")
		})
		defer be.setBehave(nil)
		if r := do(t, nil, "GET", g.url+"/v1/orders/o-1", nil, customer()); r.status != http.StatusServiceUnavailable {
			t.Fatalf("failing GET: %d %s", r.status, r.body)
		}
		return int(n.Load())
	}
	steps := []struct {
		name      string
		yaml      string
		attempts  int
		sameConns bool
	}{
		{"at start", retrying, 3, true},
		{"the same file again keeps the connections", retrying, 3, true},
		{"GetOrder no longer idempotent", retrying + "routes: {shop.order.v1.OrderService/GetOrder: {idempotent: false}}\n", 1, false},
		{"max_attempts 2", baseYAML(be.addr, "retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 2ms, throttling: {max_tokens: 1000}}\n"), 2, false},
	}
	for i, st := range steps {
		if i > 0 {
			g.reloadChecksConns(t, st.name, st.yaml, st.sameConns)
		}
		if got := attemptsOf(); got != st.attempts {
			t.Errorf("%s: %d attempts, want %d", st.name, got, st.attempts)
		}
	}
}

// TestReloadChangesTimeouts: route timeouts are the upstream connections' per-method timeouts
// (service config), so a reload that changes one, for an RPC or a whole service, dials new
// connections and the upstream sees the new deadline at once; one that changes none keeps the
// connections.
func TestReloadChangesTimeouts(t *testing.T) {
	be := startBackend(t)
	yaml := func(inventory, getOrder string) string {
		return baseYAML(be.addr, "routes:\n  shop.inventory.v1.InventoryService: {timeout: "+inventory+"}\n  shop.order.v1.OrderService/GetOrder: {timeout: "+getOrder+"}\n")
	}
	g := startGateway(t, yaml("2s", "2s"), Options{Logger: discardLogger()})
	g.waitReady(t)
	// deadlineOf is the deadline the upstream saw for one request.
	deadlineOf := func(path string) time.Duration {
		if r := do(t, nil, "GET", g.url+path, nil, customer()); r.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		return be.last(t).deadline
	}
	steps := []struct {
		name              string
		yaml              string
		getOrder, getItem time.Duration // the timeouts the upstream must see
		sameConns         bool
	}{
		{"at start", yaml("2s", "2s"), 2 * time.Second, 2 * time.Second, true},
		{"the same file again keeps the connections", yaml("2s", "2s"), 2 * time.Second, 2 * time.Second, true},
		{"GetOrder's timeout changed", yaml("2s", "7s"), 7 * time.Second, 2 * time.Second, false},
		{"the inventory service's timeout changed", yaml("4s", "7s"), 7 * time.Second, 4 * time.Second, false},
	}
	for i, st := range steps {
		if i > 0 {
			g.reloadChecksConns(t, st.name, st.yaml, st.sameConns)
		}
		for _, c := range []struct {
			path string
			want time.Duration
		}{{"/v1/orders/o-1", st.getOrder}, {"/v1/inventory/items/sku-1", st.getItem}} {
			// The deadline the upstream sees is the timeout minus the time in transit.
			if d := deadlineOf(c.path); d > c.want || d < c.want-time.Second {
				t.Errorf("%s: GET %s: upstream deadline in %v, want in (%v, %v]", st.name, c.path, d, c.want-time.Second, c.want)
			}
		}
	}
}

// TestStreamRefusedBeforeItsFirstMessage: a :watch the upstream refuses at once (an unknown or
// someone else's order) is answered like a unary call, the mapped HTTP status and a plain
// google.rpc.Status body, not a stream error chunk; a stream that ends OK with no message is
// an empty 200.
func TestStreamRefusedBeforeItsFirstMessage(t *testing.T) {
	be := startBackend(t)
	g := startGateway(t, baseYAML(be.addr, ""), Options{Logger: discardLogger()})
	g.waitReady(t)
	tests := []struct {
		name     string
		watch    func(grpc.ServerStreamingServer[orderv1.Order]) error
		status   int
		wantCode int
	}{
		{"not found", func(grpc.ServerStreamingServer[orderv1.Order]) error {
			return status.Error(codes.NotFound, "order not found")
		}, 404, 5},
		{"permission denied", func(grpc.ServerStreamingServer[orderv1.Order]) error {
			return status.Error(codes.PermissionDenied, "no")
		}, 403, 7},
		{"internal, text hidden", func(grpc.ServerStreamingServer[orderv1.Order]) error {
			return status.Error(codes.Internal, "db at 10.0.0.7 on fire")
		}, 500, 13},
		{"ends OK with no message", func(grpc.ServerStreamingServer[orderv1.Order]) error { return nil }, 200, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be.mu.Lock()
			be.watch = tt.watch
			be.mu.Unlock()
			r := do(t, nil, "GET", g.url+"/v1/orders/o-1:watch", nil, customer())
			if r.status != tt.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.wantCode < 0 {
				if len(bytes.TrimSpace(r.body)) != 0 {
					t.Fatalf("body %q, want none", r.body)
				}
				return
			}
			code, msg, _ := r.rpcStatus(t)
			if code != tt.wantCode || strings.Contains(msg, "10.0.0.7") || bytes.Contains(r.body, []byte(`"error"`)) {
				t.Fatalf("body %s, want a plain Status with code %d and no internal text", r.body, tt.wantCode)
			}
		})
	}
}

// reloadChecksConns reloads g with yaml and checks whether the upstream connections were kept.
func (g *gateway) reloadChecksConns(t *testing.T, step, yaml string, wantKept bool) {
	t.Helper()
	before := g.cur.Load().conns
	if err := g.Reload(parse(t, yaml)); err != nil {
		t.Fatalf("%s: reload: %v", step, err)
	}
	if kept := g.cur.Load().conns == before; kept != wantKept {
		t.Errorf("%s: connections kept = %v, want %v", step, kept, wantKept)
	}
}
