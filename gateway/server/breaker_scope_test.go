package server

import (
	"context"
	"net/http"
	"testing"
)

// TestADependencysFaultOpensOnlyItsRPC: CreateOrder timing out (its inventory dependency is
// frozen) opens CreateOrder's breaker only; GetOrder, which never touches inventory, keeps
// answering 200 (with one breaker per service it got 503 for the open timeout).
func TestADependencysFaultOpensOnlyItsRPC(t *testing.T) {
	be := startBackend(t)
	be.setBehave(func(ctx context.Context, method string) error {
		if method == "CreateOrder" {
			<-ctx.Done() // the order service waits on a frozen inventory
			return ctx.Err()
		}
		return nil
	})
	g := startGateway(t, baseYAML(be.addr, `
breaker: {consecutive_failures: 3, open_timeout: 1h}
routes:
  shop.order.v1.OrderService/CreateOrder: {timeout: 100ms}
`), Options{})
	g.waitReady(t)
	for i := range 3 {
		if r := do(t, nil, http.MethodPost, g.url+"/v1/orders", jsonBody(`{"items":[{"sku":"a","quantity":1}]}`), customer()); r.status != http.StatusGatewayTimeout {
			t.Fatalf("CreateOrder %d: %d %s, want 504", i, r.status, r.body)
		}
	}
	if r := do(t, nil, http.MethodPost, g.url+"/v1/orders", jsonBody(`{"items":[{"sku":"a","quantity":1}]}`), customer()); r.status != http.StatusServiceUnavailable {
		t.Fatalf("CreateOrder after the threshold: %d %s, want 503 (its breaker open)", r.status, r.body)
	}
	if r := do(t, nil, http.MethodGet, g.url+"/v1/orders/o-1", nil, customer()); r.status != http.StatusOK {
		t.Fatalf("GetOrder: %d %s, want 200", r.status, r.body)
	}
	if st := g.breakerState(t, "/shop.order.v1.OrderService/GetOrder"); st != "closed" {
		t.Errorf("GetOrder's breaker is %q", st)
	}
}
