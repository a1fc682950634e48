package server

import (
	"context"
	"net/http"
	"strings"
	"testing"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/internal/shopapi"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// pooledYAML is a gateway whose order service has a canary pool beside its own address.
func pooledYAML(stable, canary, rules string) string {
	return strings.Replace(baseYAML(stable, ""), `  shop.order.v1.OrderService: {addresses: ["`+stable+`"]}`,
		`  shop.order.v1.OrderService:
    addresses: ["`+stable+`"]
    pools: {canary: {addresses: ["`+canary+`"]}}
    rules:
`+rules, 1)
}

const canaryHeaderRule = `      - {pool: canary, header: {name: X-Canary, value: "1"}}
`

func TestPoolsInTheGateway(t *testing.T) {
	stable, canary := startBackend(t), startBackend(t)
	for _, be := range []*backend{stable, canary} {
		be.watch = func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
			return stream.Send(&orderv1.Order{Id: "o-1", Status: orderv1.OrderStatus_ORDER_STATUS_CONFIRMED})
		}
	}
	var logs syncBuffer
	gw := startGateway(t, pooledYAML(stable.addr, canary.addr, canaryHeaderRule), Options{AccessLogWriter: &logs})
	gw.waitReady(t)
	toCanary := func() http.Header { h := customer(); h.Set("X-Canary", "1"); return h }

	// served returns which backend's call count grew by one request.
	served := func(path string, h http.Header) (string, int) {
		t.Helper()
		s, c := stable.count(), canary.count()
		r := do(t, nil, http.MethodGet, gw.url+path, nil, h)
		switch {
		case stable.count() > s && canary.count() == c:
			return "stable", r.status
		case canary.count() > c && stable.count() == s:
			return "canary", r.status
		}
		return "none", r.status
	}
	tests := []struct {
		name, path string
		header     http.Header
		want       string
	}{
		{"unary, no header", "/v1/orders/o-1", customer(), "stable"},
		{"unary, header", "/v1/orders/o-1", toCanary(), "canary"},
		{"stream, no header", "/v1/orders/o-1:watch", customer(), "stable"},
		{"stream, header", "/v1/orders/o-1:watch", toCanary(), "canary"},
		{"a service without pools", "/v1/inventory/items/sku-1", toCanary(), "stable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, code := served(tt.path, tt.header); got != tt.want || code != http.StatusOK {
				t.Fatalf("served by %s (%d), want %s (200)", got, code, tt.want)
			}
		})
	}
	t.Run("access log names the pool", func(t *testing.T) {
		poll(t, "the lines of the watches", func() bool { return len(logs.lines()) >= len(tests) })
		pools := map[string]int{}
		for _, l := range logs.lines() {
			p, _ := l["pool"].(string)
			if strings.HasPrefix(l["path"].(string), "/v1/inventory/") && p != "" {
				t.Fatalf("a service without pools has a pool in its line: %v", l)
			}
			pools[p]++
		}
		if pools["canary"] != 2 || pools["default"] != 2 {
			t.Fatalf("lines by pool %v, want 2 canary and 2 default", pools)
		}
	})

	t.Run("breakers per pool", func(t *testing.T) {
		canary.setBehave(func(context.Context, string) error { return status.Error(codes.Unavailable, "canary down") })
		defer canary.setBehave(nil)
		for range 10 {
			do(t, nil, http.MethodGet, gw.url+"/v1/orders/o-1", nil, toCanary())
		}
		states := gw.breakers.States()
		if states["/shop.order.v1.OrderService/GetOrder@canary"] != "open" {
			t.Fatalf("breakers %v: want GetOrder@canary open", states)
		}
		if states["/shop.order.v1.OrderService/GetOrder"] == "open" {
			t.Fatalf("breakers %v: the stable pool's opened with the canary's", states)
		}
		if got, code := served("/v1/orders/o-1", customer()); got != "stable" || code != http.StatusOK {
			t.Fatalf("stable while the canary's circuit is open: %s (%d)", got, code)
		}
		if r := do(t, nil, http.MethodGet, gw.url+"/v1/orders/o-1", nil, toCanary()); r.status != http.StatusServiceUnavailable {
			t.Fatalf("canary call while its circuit is open: %d, want 503 (no spill to stable)", r.status)
		}
	})

	t.Run("reload replaces the rules", func(t *testing.T) {
		if err := gw.Reload(parse(t, pooledYAML(stable.addr, canary.addr, "      - {pool: canary, methods: [WatchOrder], subject: [\"apikey|alice\"]}\n"))); err != nil {
			t.Fatal(err)
		}
		if got, _ := served("/v1/orders/o-1", toCanary()); got != "stable" {
			t.Fatalf("GetOrder with the old rule's header after reload: %s, want stable", got)
		}
		if got, _ := served("/v1/orders/o-1:watch", customer()); got != "canary" {
			t.Fatalf("alice's WatchOrder after reload: %s, want canary", got)
		}
		// A pool's addresses are the dialed connections: changing them needs a restart.
		err := gw.Reload(parse(t, pooledYAML(stable.addr, deadAddr(t), canaryHeaderRule)))
		if err == nil || !strings.Contains(err.Error(), "upstreams changed") {
			t.Fatalf("Reload with another canary address: %v, want refused", err)
		}
	})
}

func TestPoolRulesNameRealMethods(t *testing.T) {
	be := startBackend(t)
	cfg := parse(t, pooledYAML(be.addr, be.addr, "      - {pool: canary, methods: [Nope], header: {name: X, value: \"1\"}}\n"))
	_, err := New(cfg, Options{Services: shopapi.Services(), Logger: discardLogger()})
	if err == nil || !strings.Contains(err.Error(), `has no RPC "Nope"`) {
		t.Fatalf("New: %v, want an error naming the unknown RPC", err)
	}
}
