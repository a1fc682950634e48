package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"

	"github.com/acme/shopgate/cmd/internal/svcmain/svcmaintest"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
	srv := grpcserver.New(grpcserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Passport: passporttest.Verifier()})
	inventory.New(store, inventory.Options{}).Register(srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(lis) }()
	t.Cleanup(func() { srv.Stop(); _ = store.Close() })
	return lis.Addr().String()
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	_ = lis.Close()
	return addr
}

// TestRun starts the binary with the inventory up and the order and payment services down,
// from flags and from a YAML file: it serves health, and the home screen comes partial.
func TestRun(t *testing.T) {
	inv, gone, metrics := inventoryAt(t), closedAddr(t), closedAddr(t)
	cfgPath := filepath.Join(t.TempDir(), "storefrontd.yaml")
	yaml := "listen: 127.0.0.1:1\ninventory_addr: " + inv + "\norder_addr: " + gone + "\npayment_addr: " + gone + "\ndependency_timeout: 300ms\n"
	if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	alice := metadata.Pairs(passport.MDPassport, passporttest.Token(passporttest.Claims{
		Caller:   passport.Caller{Subject: "alice", Roles: []string{"customer"}, Auth: "jwt"},
		Audience: append([]string{storefrontv1.StorefrontService_ServiceDesc.ServiceName}, passporttest.Audiences...)}))
	tests := []struct {
		name string
		args []string
	}{
		{"flags", []string{"-listen", "127.0.0.1:0", "-inventory-addr", inv, "-order-addr", gone, "-payment-addr", gone, "-metrics-listen", metrics}},
		{"yaml with a flag override", []string{"-config", cfgPath, "-listen", "127.0.0.1:0"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, stop := svcmaintest.Start(t, run, tc.args...)
			conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: storefrontv1.StorefrontService_ServiceDesc.ServiceName})
			if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
				t.Fatalf("health %v, %v", h.GetStatus(), err)
			}
			home, err := storefrontv1.NewStorefrontServiceClient(conn).GetHome(metadata.NewOutgoingContext(ctx, alice), &storefrontv1.GetHomeRequest{})
			if err != nil || len(home.GetCatalogue()) == 0 || !slices.Equal(home.GetMissing(), []string{"orders"}) {
				t.Fatalf("GetHome: %v, %v; want the catalogue without the orders", home, err)
			}
			if slices.Contains(tc.args, "-metrics-listen") {
				res, err := http.Get("http://" + metrics + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(res.Body)
				_ = res.Body.Close()
				if want := `storefront_partial_total{part="orders",rpc="GetHome"} 1`; !strings.Contains(string(body), want) {
					t.Errorf("/metrics lacks %s:\n%s", want, body)
				}
			}
			if err := stop(); err != nil {
				t.Fatalf("run: %v", err)
			}
		})
	}
}

func TestConfigErrors(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:0\nbroker_url: nats://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jwks := passporttest.WriteJWKS(t)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"a key of another service", []string{"-config", bad}, "broker_url"},
		{"no data flag: it has no database", []string{"-data", "x"}, "-data"},
		{"no broker flag: it consumes no events", []string{"-broker-url", "nats://x"}, "-broker-url"},
		{"bad log level", []string{"-log-level", "loud", "-listen", "127.0.0.1:0", "-passport-jwks", jwks}, "log level"},
		{"no passport keys", []string{"-listen", "127.0.0.1:0"}, "-passport-jwks"},
		{"bad dependency timeout", []string{"-dependency-timeout", "0s", "-passport-jwks", jwks}, "-dependency-timeout"},
		{"bad address list", []string{"-order-addr", "a:1,,b:2", "-passport-jwks", jwks}, "order address list"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run %q: %v, want an error naming %q", tc.args, err, tc.want)
			}
		})
	}
}
