package main

import (
	"context"
	"github.com/acme/shopgate/services/pgnotify/pgnotifytest"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/cmd/internal/svcmain/svcmaintest"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/internal/testpg"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// start runs the binary's run in the background (svcmaintest.Start).
func start(t *testing.T, args ...string) (string, func() error) {
	t.Helper()
	return svcmaintest.Start(t, run, args...)
}

// inventoryAt serves a seeded inventory service on a loopback port, as inventoryd would.
func inventoryAt(t *testing.T) string {
	t.Helper()
	store, err := inventory.OpenSQLite(filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	if err := inventory.SeedDemo(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	srv := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	inventory.New(store, inventory.Options{}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); _ = store.Close() })
	return lis.Addr().String()
}

func TestRun(t *testing.T) {
	dir := t.TempDir()
	inv := inventoryAt(t)
	cfgPath := filepath.Join(dir, "orderd.yaml")
	if err := os.WriteFile(cfgPath, []byte("listen: 127.0.0.1:1\ninventory_addr: "+inv+"\ndata: "+dir+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := metadata.NewOutgoingContext(context.Background(), passporttest.Metadata(passport.Caller{Subject: "alice", Roles: []string{"customer"}, Auth: "jwt"}))
	var firstID string
	tests := []struct {
		name string
		args []string
	}{
		{"flags", []string{"-listen", "127.0.0.1:0", "-data", dir, "-inventory-addr", inv}},
		{"yaml with a flag override, restart keeps the orders", []string{"-config", cfgPath, "-listen", "127.0.0.1:0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, stop := start(t, tc.args...)
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(alice, 5*time.Second)
			defer cancel()
			anon, cancelAnon := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancelAnon()
			h, err := healthpb.NewHealthClient(conn).Check(anon, &healthpb.HealthCheckRequest{Service: "shop.order.v1.OrderService"})
			if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health %v, %v", h.GetStatus(), err)
			}
			client := orderv1.NewOrderServiceClient(conn)
			// A caller inside the network forging the old unsigned passport is anonymous.
			forged := metadata.AppendToOutgoingContext(anon, "x-user-id", "root", "x-user-roles", "admin", "x-user-auth", "jwt")
			if _, err := client.ListOrders(forged, &orderv1.ListOrdersRequest{}); status.Code(err) != codes.Unauthenticated {
				t.Fatalf("ListOrders with forged x-user-roles: admin: %v, want UNAUTHENTICATED", err)
			}
			o, err := client.CreateOrder(ctx, &orderv1.CreateOrderRequest{Items: []*orderv1.OrderLine{{Sku: "sku-apple", Quantity: 2}}})
			if err != nil || o.GetTotalCents() != 240 {
				t.Fatalf("create: %v, %v", o, err)
			}
			if firstID == "" {
				firstID = o.GetId()
			} else if _, err := client.GetOrder(ctx, &orderv1.GetOrderRequest{Id: firstID}); err != nil {
				t.Fatalf("order of the first run lost: %v", err)
			}
			// A watch stream open at shutdown must not hold it up.
			stream, err := client.WatchOrder(ctx, &orderv1.WatchOrderRequest{Id: o.GetId()})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := stream.Recv(); err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
			if d := time.Since(begin); d > 5*time.Second {
				t.Fatalf("shutdown took %v with a watch open", d)
			}
			if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
				t.Fatalf("watch after shutdown: %v", err)
			}
		})
	}
	t.Run("config errors", func(t *testing.T) { svcmaintest.ConfigErrors(t, run) })
}

// Two orderd replicas on one PostgreSQL schema, one given -database-url, the other
// ORDERD__DATABASE_URL: an order created through one is read through the other. A URL that is
// not PostgreSQL is refused at startup, saying what is expected.
func TestRunOnPostgres(t *testing.T) {
	url := testpg.Schema(t, "orderd")
	inv := inventoryAt(t)
	alice := metadata.NewOutgoingContext(context.Background(), passporttest.Metadata(passport.Caller{Subject: "alice", Roles: []string{"customer"}, Auth: "jwt"}))
	ctx, cancel := context.WithTimeout(alice, 10*time.Second)
	defer cancel()
	// -watch-notify-url defaults to the PostgreSQL -database-url: both replicas LISTEN.
	ch := pgnotifytest.Channel(t)
	addrA, stopA := start(t, "-listen", "127.0.0.1:0", "-data", t.TempDir(), "-inventory-addr", inv, "-database-url", url, "-watch-notify-channel", ch)
	t.Setenv("ORDERD__DATABASE_URL", url)
	addrB, stopB := start(t, "-listen", "127.0.0.1:0", "-data", t.TempDir(), "-inventory-addr", inv, "-watch-notify-channel", ch)
	var listening int
	pgnotifytest.QueryRow(t, url, `SELECT count(*) FROM pg_stat_activity WHERE query = $1`, []any{`LISTEN "` + ch + `"`}, &listening)
	if listening != 2 {
		t.Fatalf("%d replicas LISTEN on %s, want 2 (-watch-notify-url defaults to -database-url)", listening, ch)
	}
	client := func(addr string) orderv1.OrderServiceClient {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close() })
		return orderv1.NewOrderServiceClient(conn)
	}
	o, err := client(addrA).CreateOrder(ctx, &orderv1.CreateOrderRequest{Items: []*orderv1.OrderLine{{Sku: "sku-apple", Quantity: 2}}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := client(addrB).GetOrder(ctx, &orderv1.GetOrderRequest{Id: o.GetId()})
	if err != nil || got.GetTotalCents() != 240 {
		t.Fatalf("the other replica reads %v, %v", got, err)
	}
	if err := stopA(); err != nil {
		t.Fatalf("replica A: %v", err)
	}
	if err := stopB(); err != nil {
		t.Fatalf("replica B: %v", err)
	}
	t.Run("bad url", func(t *testing.T) {
		for _, bad := range []string{"mysql://127.0.0.1/shop", "postgres://127.0.0.1:notaport/shop"} {
			err := run(context.Background(), []string{"-listen", "127.0.0.1:0", "-data", t.TempDir(), "-inventory-addr", inv,
				"-passport-jwks", passporttest.WriteJWKS(t), "-database-url", bad}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), "opening order store") {
				t.Fatalf("-database-url %s: %v, want a clear error", bad, err)
			}
		}
	})
}
