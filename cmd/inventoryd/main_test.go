package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/cmd/internal/svcmain/svcmaintest"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs the binary's run in the background (svcmaintest.Start).
func start(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	return svcmaintest.Start(t, run, args...)
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	cfgPath := filepath.Join(dir, "inventoryd.yaml")
	if err := os.WriteFile(cfgPath, []byte("listen: 127.0.0.1:1\nseed: true\ndata: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		args      []string
		wantItems int
	}{
		{"flags, seeded", []string{"-listen", "127.0.0.1:0", "-data", dir, "-seed"}, 5},
		{"yaml with a flag override, restart keeps the data", []string{"-config", cfgPath, "-listen", "127.0.0.1:0"}, 5},
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
			h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "shop.inventory.v1.InventoryService"})
			if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health %v, %v", h.GetStatus(), err)
			}
			resp, err := inventoryv1.NewInventoryServiceClient(conn).ListItems(ctx, &inventoryv1.ListItemsRequest{})
			if err != nil || len(resp.GetItems()) != tc.wantItems {
				t.Fatalf("items %d, %v; want %d", len(resp.GetItems()), err, tc.wantItems)
			}
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "inventory", "inventory.db")); err != nil {
				t.Fatal(err)
			}
		})
	}
	t.Run("metrics", func(t *testing.T) {
		// A free port for the metrics listener (the gRPC one reports its own address).
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		metricsAddr := l.Addr().String()
		_ = l.Close()
		addr, stop := start(t, "-listen", "127.0.0.1:0", "-data", dir, "-metrics-listen", metricsAddr)
		defer func() {
			if err := stop(); err != nil {
				t.Errorf("run: %v", err)
			}
		}()
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if _, err := inventoryv1.NewInventoryServiceClient(conn).GetItem(context.Background(), &inventoryv1.GetItemRequest{Sku: "sku-apple"}); err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		want := `grpc_server_handled_total{grpc_code="OK",grpc_method="GetItem",grpc_service="shop.inventory.v1.InventoryService",grpc_type="unary"} 1`
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) || !strings.Contains(string(body), "go_goroutines") {
			t.Fatalf("metrics %d:\n%s", resp.StatusCode, body)
		}
	})
	t.Run("config errors", func(t *testing.T) { svcmaintest.ConfigErrors(t, run) })
}
