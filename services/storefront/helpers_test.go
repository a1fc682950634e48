package storefront_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/order"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"github.com/acme/shopgate/services/payment"
	"github.com/acme/shopgate/services/storefront"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The storefront's full service name, and the aud of a passport the gateway signs for it with
// its delegates.
const storefrontService = "shop.storefront.v1.StorefrontService"

var delegated = []string{storefrontService, orderv1.OrderService_ServiceDesc.ServiceName,
	inventoryv1.InventoryService_ServiceDesc.ServiceName, paymentv1.PaymentService_ServiceDesc.ServiceName}

// serve serves register on an in-memory listener verifying passporttest's passports, and
// returns a client connection to it; both end with the test.
func serve(t *testing.T, register func(grpc.ServiceRegistrar)) *grpc.ClientConn {
	t.Helper()
	srv := grpcserver.New(grpcserver.Options{Logger: quiet, Passport: passporttest.Verifier()})
	register(srv)
	lis := bufconn.Listen(1 << 20)
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///bufconn",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); srv.Stop() })
	return conn
}

// fault is what a dependency does to calls.
type fault int

const (
	healthy fault = iota
	down          // every call: UNAVAILABLE at once
	slow          // every call: waits until its deadline
	closing       // every call: CANCELLED, as from a connection being closed
)

// faulty is a dependency's connection with a fault.
type faulty struct {
	grpc.ClientConnInterface
	fault fault
}

func (f faulty) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	switch f.fault {
	case down:
		return status.Error(codes.Unavailable, "connection refused (10.0.0.7:9103)")
	case slow:
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	case closing:
		return status.Error(codes.Canceled, "grpc: the client connection is closing")
	}
	return f.ClientConnInterface.Invoke(ctx, method, args, reply, opts...)
}

// shop is the real order, payment and inventory services in memory, and a storefront over them.
type shop struct {
	orders   orderv1.OrderServiceClient
	payments *payment.Service
	conns    map[string]grpc.ClientConnInterface // the dependencies' connections, by short name
}

func newShop(t *testing.T) *shop {
	t.Helper()
	dir := t.TempDir()
	invStore, err := inventory.OpenSQLite(filepath.Join(dir, "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = invStore.Close() })
	if err := inventory.SeedDemo(context.Background(), invStore); err != nil {
		t.Fatal(err)
	}
	invConn := serve(t, inventory.New(invStore, inventory.Options{Logger: quiet}).Register)

	payStore, err := payment.OpenSQLite(filepath.Join(dir, "payment.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = payStore.Close() })
	pay := payment.New(payStore, payment.Options{Logger: quiet})
	payConn := serve(t, pay.Register)

	ordStore, err := order.OpenSQLite(filepath.Join(dir, "order.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ordStore.Close() })
	ord := order.New(ordStore, inventoryv1.NewInventoryServiceClient(invConn), order.Options{Logger: quiet})
	t.Cleanup(ord.Close)
	ordConn := serve(t, ord.Register)
	return &shop{orders: orderv1.NewOrderServiceClient(ordConn), payments: pay,
		conns: map[string]grpc.ClientConnInterface{"order": ordConn, "inventory": invConn, "payment": payConn}}
}

// storefront serves a storefront over s's services, each with its fault (healthy when not
// named), and returns its client.
func (s *shop) storefront(t *testing.T, opts storefront.Options, faults map[string]fault) storefrontv1.StorefrontServiceClient {
	t.Helper()
	dep := func(name string) grpc.ClientConnInterface { return faulty{s.conns[name], faults[name]} }
	opts.Logger = quiet
	sf := storefront.New(storefront.Clients{
		Orders:    orderv1.NewOrderServiceClient(dep("order")),
		Inventory: inventoryv1.NewInventoryServiceClient(dep("inventory")),
		Payments:  paymentv1.NewPaymentServiceClient(dep("payment")),
	}, opts)
	return storefrontv1.NewStorefrontServiceClient(serve(t, sf.Register))
}

// as returns a context carrying sub's passport for aud (passporttest.Audiences when nil),
// ending with the test or after 10s.
func as(t *testing.T, sub string, aud ...string) context.Context {
	t.Helper()
	roles := []string{"customer"}
	if sub == "root" {
		roles = []string{"admin"}
	}
	tok := passporttest.Token(passporttest.Claims{Caller: passport.Caller{Subject: sub, Roles: roles, Auth: "jwt"}, Audience: aud})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return metadata.NewOutgoingContext(ctx, metadata.Pairs(passport.MDPassport, tok))
}

// order places an order of lines ("sku:qty" each) as sub and, when method is not empty, records
// its payment as the payment service would on OrderCreated.
func (s *shop) order(t *testing.T, sub, method string, lines ...string) *orderv1.Order {
	t.Helper()
	req := &orderv1.CreateOrderRequest{PaymentMethod: method}
	for _, l := range lines {
		sku, qty, _ := strings.Cut(l, ":")
		n := int32(1)
		if qty == "2" {
			n = 2
		}
		req.Items = append(req.Items, &orderv1.OrderLine{Sku: sku, Quantity: n})
	}
	o, err := s.orders.CreateOrder(as(t, sub), req)
	if err != nil {
		t.Fatal(err)
	}
	if method != "" {
		ev := &eventsv1.OrderCreated{OrderId: o.GetId(), CustomerId: sub, TotalCents: o.GetTotalCents(), Currency: o.GetCurrency(), PaymentMethod: method}
		if err := s.payments.HandleOrderCreated(context.Background(), "ev-"+o.GetId(), ev); err != nil {
			t.Fatal(err)
		}
	}
	return o
}
