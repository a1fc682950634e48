package upstream_test

import (
	"context"
	"net"
	"testing"

	"github.com/acme/shopgate/gateway/upstream"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// TestDNSTarget dials "dns:///localhost:PORT" beside a static list: the name resolves through
// grpc-go's DNS resolver, the pool learns its instance from the resolver's state (the ejection
// pool rode along: Instances counts it), health checks take it out and back, and PoolOf names
// the pool of each connection.
func TestDNSTarget(t *testing.T) {
	a, b := start(t, "a", 0), start(t, "b", 0)
	_, port, _ := net.SplitHostPort(a.addr)
	set, err := upstream.DialPools(map[string]map[string][]string{svc: {
		upstream.DefaultPool: {b.addr},
		"canary":             {"dns:///localhost:" + port},
	}}, upstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	canary := set.Pool(svc, "canary")
	poll(t, "the dns pool READY", func() bool { return canary.Ready(false) && canary.Ready(true) })
	if got := set.PoolInstances()[svc]["canary"]; got != (upstream.Instances{Ready: 1, Total: 1}) {
		t.Fatalf("canary instances = %+v, want 1 ready of 1", got)
	}
	client := inventoryv1.NewInventoryServiceClient(canary)
	for range 5 {
		item, err := client.GetItem(context.Background(), &inventoryv1.GetItemRequest{})
		if err != nil || item.GetName() != "a" {
			t.Fatalf("GetItem over dns:/// = %v, %v; want a", item, err)
		}
	}
	if item, err := inventoryv1.NewInventoryServiceClient(set.Conn(svc)).GetItem(context.Background(), &inventoryv1.GetItemRequest{}); err != nil || item.GetName() != "b" {
		t.Fatalf("GetItem on the default pool = %v, %v; want b", item, err)
	}

	a.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	poll(t, "the unhealthy instance to leave", func() bool { return set.PoolInstances()[svc]["canary"].Ready == 0 })
	if _, err := client.GetItem(context.Background(), &inventoryv1.GetItemRequest{}); status.Code(err) != codes.Unavailable {
		t.Fatalf("GetItem with no healthy instance: %v, want UNAVAILABLE", err)
	}
	a.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	poll(t, "the instance back", func() bool { return set.PoolInstances()[svc]["canary"].Ready == 1 })
	if !set.Ready() {
		t.Fatal("set not ready")
	}
}

func TestDialPoolsNeedsDefault(t *testing.T) {
	if _, err := upstream.DialPools(map[string]map[string][]string{svc: {"canary": {"127.0.0.1:1"}}}, upstream.Options{}); err == nil {
		t.Fatal("DialPools without a default pool: no error")
	}
}
