package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
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
			open := g.breakers.States()["shop.inventory.v1.InventoryService"] == "open"
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
