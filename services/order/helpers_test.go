package order_test

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/events/eventstest"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/order"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/test/bufconn"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a test clock that moves 1ms per reading (so orders have distinct times) and jumps
// with Advance.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// serve runs register's services on a bufconn gRPC server and returns a client connection.
func serve(t testing.TB, register func(grpc.ServiceRegistrar)) (*grpc.ClientConn, func()) {
	t.Helper()
	srv := grpcserver.New(grpcserver.Options{Logger: quiet, Passport: passporttest.Verifier()})
	register(srv)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///buf",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); srv.Stop() })
	return conn, srv.Stop
}

type harness struct {
	dir           string
	clock         *clock
	invStore      *inventory.SQLStore
	inv           inventoryv1.InventoryServiceClient
	stopInventory func()
	store         *order.SQLStore
	svc           *order.Service
	client        orderv1.OrderServiceClient
}

// newHarness runs the real inventory service (seeded with a few items) and the order service
// over bufconn, on SQLite files in a temporary folder (PostgreSQL schemas under TestPostgres).
func newHarness(t testing.TB, opts order.Options) *harness {
	t.Helper()
	h := &harness{dir: t.TempDir(), clock: newClock()}
	h.invStore = openInventory(t, filepath.Join(h.dir, "inventory.db"))
	t.Cleanup(func() { _ = h.invStore.Close() })
	invSvc := inventory.New(h.invStore, inventory.Options{Logger: quiet})
	invConn, stopInv := serve(t, invSvc.Register)
	h.stopInventory = stopInv
	h.inv = inventoryv1.NewInventoryServiceClient(invConn)
	for _, it := range []*inventoryv1.Item{
		{Sku: "sku-apple", Name: "Apple", PriceCents: 120, Currency: "USD", Available: 100},
		{Sku: "sku-pear", Name: "Pear", PriceCents: 95, Currency: "USD", Available: 100},
		{Sku: "sku-euro", Name: "Croissant", PriceCents: 150, Currency: "EUR", Available: 100},
	} {
		if _, err := h.inv.UpsertItem(as("root", "admin"), &inventoryv1.UpsertItemRequest{Item: it}); err != nil {
			t.Fatal(err)
		}
	}
	h.start(t, opts)
	return h
}

// start opens the order store and serves a new order service on it.
func (h *harness) start(t testing.TB, opts order.Options) {
	t.Helper()
	h.store = openOrder(t, filepath.Join(h.dir, "order.db"))
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.Now == nil {
		opts.Now = h.clock.Now
	}
	h.svc = order.New(h.store, h.inv, opts)
	conn, stop := serve(t, h.svc.Register)
	h.client = orderv1.NewOrderServiceClient(conn)
	svc, store := h.svc, h.store
	t.Cleanup(func() { svc.Close(); stop(); _ = store.Close() })
}

func as(sub, roles string, kv ...string) context.Context {
	md := passporttest.Metadata(passport.Caller{Subject: sub, Roles: strings.Fields(roles), Auth: "jwt"})
	md = metadata.Join(md, metadata.Pairs(kv...))
	return metadata.NewOutgoingContext(context.Background(), md)
}

func alice(kv ...string) context.Context { return as("alice", "customer", kv...) }
func bob(kv ...string) context.Context   { return as("bob", "customer", kv...) }
func admin() context.Context             { return as("root", "admin") }

func lines(kv ...any) []*orderv1.OrderLine {
	var out []*orderv1.OrderLine
	for i := 0; i+1 < len(kv); i += 2 {
		out = append(out, &orderv1.OrderLine{Sku: kv[i].(string), Quantity: int32(kv[i+1].(int))})
	}
	return out
}

func (h *harness) create(t *testing.T, ctx context.Context, ls ...*orderv1.OrderLine) *orderv1.Order {
	t.Helper()
	o, err := h.client.CreateOrder(ctx, &orderv1.CreateOrderRequest{Items: ls})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	return o
}

// outbox returns the envelopes recorded for orderID, oldest first.
func (h *harness) outbox(t *testing.T, orderID string) []*eventsv1.Envelope {
	t.Helper()
	return readOutbox(t, h.store.DB(), orderID)
}

// readOutbox returns the envelopes recorded for orderID in the outbox of db, oldest first.
func readOutbox(t *testing.T, db *sql.DB, orderID string) []*eventsv1.Envelope {
	t.Helper()
	return eventstest.Outbox(t, db, orderID)
}

// Two W3C trace contexts a client sends (the "traceparent" and "tracestate" metadata).
const (
	traceParent  = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	traceState   = "acme=1"
	cancelParent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	cancelState  = "acme=2"
)

// traceMD is the metadata of a request with the trace context tc, for alice and bob.
func traceMD(tc map[string]string) []string {
	return []string{"traceparent", tc["traceparent"], "tracestate", tc["tracestate"]}
}

var (
	createTrace = map[string]string{"traceparent": traceParent, "tracestate": traceState}
	cancelTrace = map[string]string{"traceparent": cancelParent, "tracestate": cancelState}
)

func types(envs []*eventsv1.Envelope) []string {
	var out []string
	for _, e := range envs {
		out = append(out, e.GetType())
	}
	return out
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
