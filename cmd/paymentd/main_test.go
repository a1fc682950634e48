package main

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/acme/shopgate/cmd/internal/svcmain/svcmaintest"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs the binary's run in the background (svcmaintest.Start).
func start(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	return svcmaintest.Start(t, run, args...)
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "paymentd.yaml")
	if err := os.WriteFile(cfgPath, []byte("listen: 127.0.0.1:1\ndata: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
	}{
		{"flags", []string{"-listen", "127.0.0.1:0", "-data", dir}},
		{"yaml with a flag override", []string{"-config", cfgPath, "-listen", "127.0.0.1:0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, stop := start(t, tc.args...)
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "shop.payment.v1.PaymentService"})
			if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health %v, %v", h.GetStatus(), err)
			}
			_, err = paymentv1.NewPaymentServiceClient(conn).GetPayment(ctx, &paymentv1.GetPaymentRequest{Id: "x"})
			if status.Code(err) != codes.Unauthenticated {
				t.Fatalf("GetPayment without a passport: %v", err)
			}
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "payment", "payment.db")); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("config errors", func(t *testing.T) { svcmaintest.ConfigErrors(t, run) })
}
