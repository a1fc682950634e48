package grpcclient_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/acme/shopgate/services/grpcclient"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// instance serves the health service on a loopback port with status st for "".
func instance(t *testing.T, st healthpb.HealthCheckResponse_ServingStatus) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	h := health.NewServer()
	h.SetServingStatus("", st)
	healthpb.RegisterHealthServer(srv, h)
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(srv.Stop)
	return lis.Addr().String()
}

// TestDialBalancesOverServingInstances: calls go round robin to the instances that report
// SERVING, never to one that reports NOT_SERVING.
func TestDialBalancesOverServingInstances(t *testing.T) {
	a, b := instance(t, healthpb.HealthCheckResponse_SERVING), instance(t, healthpb.HealthCheckResponse_SERVING)
	down := instance(t, healthpb.HealthCheckResponse_NOT_SERVING)
	cc, err := grpcclient.Dial("inventory", " "+a+", "+down+","+b)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]int{}
	for range 40 {
		var p peer.Peer
		if _, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{}, grpc.WaitForReady(true), grpc.Peer(&p)); err != nil {
			t.Fatal(err)
		}
		seen[p.Addr.String()]++
	}
	if seen[down] != 0 || seen[a] == 0 || seen[b] == 0 {
		t.Fatalf("calls per instance %v: want both of %s and %s, none to %s", seen, a, b, down)
	}
}

func TestDialErrors(t *testing.T) {
	tests := []struct{ name, addrs, want string }{
		{"empty", "  ", "inventory address: empty"},
		{"empty entry", "127.0.0.1:1,,127.0.0.1:2", "an empty entry"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, err := grpcclient.Dial("inventory", tt.addrs)
			if err == nil {
				_ = cc.Close()
				t.Fatal("Dial accepted it")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want %q", err, tt.want)
			}
		})
	}
}

func TestDialTarget(t *testing.T) {
	cc, err := grpcclient.Dial("inventory", "dns:///localhost:9103")
	if err != nil {
		t.Fatal(err)
	}
	_ = cc.Close()
}
