package bench

import (
	"context"
	"net"
	"testing"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// fixture answers GetItem and CreateOrder at once from memory: the benchmark measures what is in
// front of it, so it does as little as an upstream can.
type fixture struct {
	inventoryv1.UnimplementedInventoryServiceServer
	orderv1.UnimplementedOrderServiceServer
	item *inventoryv1.Item
}

func (f *fixture) GetItem(_ context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.Item, error) {
	return f.item, nil
}

func (f *fixture) CreateOrder(_ context.Context, req *orderv1.CreateOrderRequest) (*orderv1.Order, error) {
	now := timestamppb.Now()
	items := make([]*orderv1.OrderItem, 0, len(req.GetItems()))
	var total int64
	for _, l := range req.GetItems() {
		items = append(items, &orderv1.OrderItem{Sku: l.GetSku(), Quantity: l.GetQuantity(), UnitPriceCents: f.item.GetPriceCents()})
		total += int64(l.GetQuantity()) * f.item.GetPriceCents()
	}
	return &orderv1.Order{
		Id: "ord-bench", CustomerId: "alice", Items: items, TotalCents: total, Currency: "USD",
		Status: orderv1.OrderStatus_ORDER_STATUS_PENDING, CreateTime: now, UpdateTime: now,
		PaymentMethod: "pm_card_ok",
	}, nil
}

// startUpstream serves the fixture on a loopback port until the benchmark ends.
func startUpstream(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := grpc.NewServer()
	f := &fixture{item: &inventoryv1.Item{Sku: "sku-apple", Name: "Apple", PriceCents: 120, Currency: "USD", Available: 100}}
	inventoryv1.RegisterInventoryServiceServer(srv, f)
	healthpb.RegisterHealthServer(srv, health.NewServer()) // the gateway health-checks its upstreams
	orderv1.RegisterOrderServiceServer(srv, f)
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(srv.Stop)
	return ln.Addr().String()
}
