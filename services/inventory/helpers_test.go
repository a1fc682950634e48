package inventory_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

type harness struct {
	path   string
	store  *inventory.SQLStore
	svc    *inventory.Service
	client inventoryv1.InventoryServiceClient
}

// newHarness serves a fresh inventory service over bufconn on a real SQLite file (a
// PostgreSQL schema under TestPostgres).
func newHarness(t testing.TB) *harness {
	t.Helper()
	path := filepath.Join(t.TempDir(), "inventory.db")
	return startAt(t, path)
}

func startAt(t testing.TB, path string) *harness {
	t.Helper()
	store := openStore(t, path)
	svc := inventory.New(store, inventory.Options{Logger: quiet})
	srv := grpcserver.New(grpcserver.Options{Logger: quiet, Passport: passporttest.Verifier()})
	svc.Register(srv)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///inventory",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{path: path, store: store, svc: svc, client: inventoryv1.NewInventoryServiceClient(conn)}
	t.Cleanup(func() {
		_ = conn.Close()
		srv.Stop()
		_ = store.Close()
	})
	return h
}

func as(sub, roles string) context.Context {
	return metadata.NewOutgoingContext(context.Background(), passporttest.Metadata(passport.Caller{Subject: sub, Roles: strings.Fields(roles), Auth: "jwt"}))
}

func admin() context.Context { return as("root", "admin") }

func (h *harness) put(t testing.TB, items ...*inventoryv1.Item) {
	t.Helper()
	for _, it := range items {
		if _, err := h.client.UpsertItem(admin(), &inventoryv1.UpsertItemRequest{Item: it}); err != nil {
			t.Fatalf("upsert %s: %v", it.GetSku(), err)
		}
	}
}
