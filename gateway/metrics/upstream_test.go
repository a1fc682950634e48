package metrics_test

import (
	"context"
	"testing"

	"github.com/acme/shopgate/gateway/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestUpstream runs calls through the unary interceptor and checks go-grpc-middleware's names
// and labels, and that a second gateway on the same registry (a reload, or cmd/shop's services)
// counts on in the same series.
func TestUpstream(t *testing.T) {
	reg := prometheus.NewRegistry()
	u, err := metrics.NewUpstream(reg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := metrics.NewUpstream(reg)
	if err != nil {
		t.Fatalf("a second NewUpstream on the same registry: %v", err)
	}
	tests := []struct {
		via  *metrics.Upstream
		err  error
		code string
	}{
		{u, nil, "OK"},
		{again, nil, "OK"},
		{u, status.Error(codes.Unavailable, "down"), "Unavailable"},
	}
	for _, tt := range tests {
		invoke := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return tt.err }
		_ = tt.via.Unary()(context.Background(), "/shop.order.v1.OrderService/GetOrder", nil, nil, nil, invoke)
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"grpc_client_started_total", nil, 3},
		{"grpc_client_handled_total", []string{"OK"}, 2},
		{"grpc_client_handled_total", []string{"Unavailable"}, 1},
	} {
		got := 0.0
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != tt.name {
				continue
			}
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				if l["grpc_service"] != "shop.order.v1.OrderService" || l["grpc_method"] != "GetOrder" || l["grpc_type"] != "unary" {
					t.Errorf("%s labels %v", tt.name, l)
				}
				if len(tt.labels) > 0 && l["grpc_code"] != tt.labels[0] {
					continue
				}
				got += m.GetCounter().GetValue()
			}
		}
		if got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "grpc_client_handling_seconds"); err != nil || n != 1 {
		t.Errorf("grpc_client_handling_seconds: %d series (%v), want 1", n, err)
	}
}

// BenchmarkUpstreamUnary is what the upstream-metrics stage adds to a unary call (go-grpc-
// middleware looks its series up by label values per call):
//
//	go test -run '^$' -bench UpstreamUnary -benchmem ./gateway/metrics
func BenchmarkUpstreamUnary(b *testing.B) {
	u, err := metrics.NewUpstream(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	invoke := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ic := u.Unary()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = ic(ctx, "/shop.inventory.v1.InventoryService/GetItem", nil, nil, nil, invoke)
	}
}
