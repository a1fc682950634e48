package grpcclient_test

import (
	"context"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/acme/shopgate/services/grpcclient"
)

// TestWithMetrics calls a real server over two connections sharing one registry and reads
// go-grpc-middleware's client metrics.
func TestWithMetrics(t *testing.T) {
	addr := instance(t, healthpb.HealthCheckResponse_SERVING)
	reg := prometheus.NewRegistry()
	for _, calls := range []int{2, 1} { // the second connection reuses the collector
		opts, err := grpcclient.WithMetrics(reg)
		if err != nil {
			t.Fatal(err)
		}
		cc, err := grpcclient.Dial("inventory", addr, opts...)
		if err != nil {
			t.Fatal(err)
		}
		for range calls {
			if _, err := healthpb.NewHealthClient(cc).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
				t.Fatal(err)
			}
		}
		_ = cc.Close()
	}
	want := `
# HELP grpc_client_handled_total Total number of RPCs completed by the client, regardless of success or failure.
# TYPE grpc_client_handled_total counter
grpc_client_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 3
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "grpc_client_handled_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "grpc_client_handling_seconds"); err != nil || n != 1 {
		t.Errorf("grpc_client_handling_seconds: %d series (%v), want 1", n, err)
	}
}
