package server

import (
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/upstream"
	"github.com/acme/shopgate/gateway/upstream/upstreamtest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

const inventorySvc = "shop.inventory.v1.InventoryService"

// readiness reads /readyz.
func readiness(t *testing.T, g *gateway) (int, Readiness) {
	t.Helper()
	r := do(t, nil, "GET", g.url+PathReadyz, nil, nil)
	var rd Readiness
	if err := json.Unmarshal(r.body, &rd); err != nil {
		t.Fatalf("/readyz %d %q: %v", r.status, r.body, err)
	}
	if rd.Upstreams == nil || rd.Breakers == nil || rd.Instances == nil {
		t.Errorf("/readyz body %s lacks a field", r.body)
	}
	return r.status, rd
}

// inventoryYAML serves the inventory on addrs and the other services on other, with a short
// GetItem timeout.
func inventoryYAML(other string, addrs ...string) string {
	list, _ := json.Marshal(addrs)
	return `
listen: 127.0.0.1:0
upstreams:
  shop.order.v1.OrderService: {addresses: ["` + other + `"]}
  shop.payment.v1.PaymentService: {addresses: ["` + other + `"]}
  shop.inventory.v1.InventoryService: {addresses: ` + string(list) + `}
routes:
  shop.inventory.v1.InventoryService/GetItem: {timeout: 300ms}
auth:
  api_keys:
    - {sha256: "` + sha(customerKey) + `", subject: alice, roles: [customer]}
`
}

// TestReadyzTellsTheTruth checks that /readyz answers 200 only when the gateway can call every
// upstream, and that one frozen instance of two is left out: its calls fail only until it is
// ejected, then every call goes to the other one.
func TestReadyzTellsTheTruth(t *testing.T) {
	t.Run("no upstream configured", func(t *testing.T) {
		t.Parallel()
		g := startGateway(t, "listen: 127.0.0.1:0\n", Options{})
		if st, rd := readiness(t, g); st != http.StatusServiceUnavailable || rd.Ready || len(rd.Instances) != 0 {
			t.Errorf("/readyz = %d %+v, want 503: nothing to serve", st, rd)
		}
	})

	t.Run("every instance fine", func(t *testing.T) {
		t.Parallel()
		a, b := startBackend(t), startBackend(t)
		g := startGateway(t, inventoryYAML(a.addr, a.addr, b.addr), Options{})
		g.waitReady(t)
		st, rd := readiness(t, g)
		if st != http.StatusOK || !rd.Ready || rd.Instances[inventorySvc] != (upstream.Instances{Ready: 2, Total: 2}) {
			t.Errorf("/readyz = %d %+v", st, rd)
		}
	})

	t.Run("one of two instances frozen", func(t *testing.T) {
		t.Parallel()
		frozen, fine := startBackend(t), startBackend(t)
		fz := upstreamtest.NewFreezer(t, frozen.addr)
		g := startGateway(t, inventoryYAML(fine.addr, fz.Addr(), fine.addr), Options{})
		g.waitReady(t)
		get := func() reply { return do(t, nil, "GET", g.url+"/v1/inventory/items/sku-1", nil, customer()) }
		for range 4 {
			if r := get(); r.status != http.StatusOK {
				t.Fatalf("before the freeze: %d %s", r.status, r.body)
			}
		}
		if frozen.count() == 0 {
			t.Fatal("the instance to freeze took no call")
		}

		fz.Freeze()
		timeouts := 0
		for range 4 * upstream.DefaultConsecutiveFailures {
			switch r := get(); r.status {
			case http.StatusOK:
			case http.StatusGatewayTimeout:
				timeouts++
			default:
				t.Fatalf("%d %s, want 200 or 504", r.status, r.body)
			}
		}
		if timeouts != upstream.DefaultConsecutiveFailures {
			t.Errorf("%d calls timed out, want %d: the ejection threshold", timeouts, upstream.DefaultConsecutiveFailures)
		}
		for range 20 {
			if r := get(); r.status != http.StatusOK {
				t.Fatalf("after the ejection: %d %s", r.status, r.body)
			}
		}
		st, rd := readiness(t, g)
		if st != http.StatusOK || !rd.Ready || rd.Instances[inventorySvc] != (upstream.Instances{Ready: 1, Ejected: 1, Total: 2}) {
			t.Errorf("/readyz = %d %+v, want 200 with one instance ejected", st, rd)
		}
		if rd.Breakers["/"+inventorySvc+"/GetItem"] != "closed" {
			t.Errorf("breaker %q, want closed: the gateway kept serving", rd.Breakers["/"+inventorySvc+"/GetItem"])
		}
	})

	t.Run("the only instance frozen", func(t *testing.T) {
		if testing.Short() {
			t.Skip("waits for a keepalive ping (10s)")
		}
		t.Parallel()
		be := startBackend(t)
		fz := upstreamtest.NewFreezer(t, be.addr)
		g := startGateway(t, inventoryYAML(be.addr, fz.Addr()), Options{DialOptions: []grpc.DialOption{
			grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: time.Second, PermitWithoutStream: true}),
		}})
		g.waitReady(t)
		fz.Freeze()
		deadline := time.Now().Add(20 * time.Second)
		for {
			st, rd := readiness(t, g)
			if st == http.StatusServiceUnavailable {
				if rd.Ready || rd.Instances[inventorySvc] != (upstream.Instances{Total: 1}) {
					t.Errorf("/readyz = %d %+v", st, rd)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("/readyz still %d %+v with the only instance frozen for 20s", st, rd)
			}
			time.Sleep(100 * time.Millisecond)
		}
		fz.Thaw()
		g.waitReady(t)
	})
}
