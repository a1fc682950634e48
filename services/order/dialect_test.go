package order_test

import (
	"context"
	"fmt"
	"github.com/acme/shopgate/services/storage/storagetest"
	"path/filepath"
	"sync"
	"testing"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/internal/testpg"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/order"
	"github.com/acme/shopgate/services/payment"
)

// TestPostgres runs the tests that touch the stores again, on PostgreSQL: under it, every store
// a test opens at a path lives in a PostgreSQL schema of its own instead (source).
func TestPostgres(t *testing.T) {
	testpg.Need(t)
	for _, tc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"CreateOrder", TestCreateOrder},
		{"Ownership", TestOwnership},
		{"CancelOrder", TestCancelOrder},
		{"Idempotency", TestIdempotency},
		{"IdempotencyConcurrent", TestIdempotencyConcurrent},
		{"ListOrdersPagination", TestListOrdersPagination},
		{"RestartPersistence", TestRestartPersistence},
		{"CreateOrderFiftyLines", TestCreateOrderFiftyLines},
		{"SagaOutcomes", TestSagaOutcomes},
		{"SagaFlow", TestSagaFlow},
		{"PendingCollector", TestPendingCollector},
		{"WatchOrder", TestWatchOrder},
		{"WatchSeesOtherInstance", TestWatchSeesOtherInstance},
	} {
		t.Run(tc.name, tc.run)
	}
}

func openOrder(t testing.TB, path string) *order.SQLStore {
	t.Helper()
	s, err := order.Open(context.Background(), storagetest.Source(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openInventory(t testing.TB, path string) *inventory.SQLStore {
	t.Helper()
	s, err := inventory.Open(context.Background(), storagetest.Source(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func openPayment(t testing.TB, path string) *payment.SQLStore {
	t.Helper()
	s, err := payment.Open(context.Background(), storagetest.Source(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Two replicas of the order service on one database receive StockReserved and PaymentCaptured
// of the same orders at the same time: each order ends CONFIRMED with both flags and its
// payment id, with exactly one OrderConfirmed. A lost update of the progress flags would leave
// an order PENDING for ever.
func TestReplicasSetSagaProgressConcurrently(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			if dialect == "postgres" {
				testpg.Need(t)
			}
			path := filepath.Join(t.TempDir(), "order.db")
			src := storagetest.SourceOn(t, path, dialect == "postgres")
			var replicas []*order.Service
			var stores []*order.SQLStore
			for range 2 {
				s, err := order.Open(context.Background(), src)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				svc := order.New(s, nil, order.Options{Logger: quiet})
				defer svc.Close()
				replicas, stores = append(replicas, svc), append(stores, s)
			}
			const orders = 20
			ctx := context.Background()
			ids := make([]string, orders)
			for i := range ids {
				ids[i] = fmt.Sprintf("order-%02d", i)
				o := &orderv1.Order{Id: ids[i], CustomerId: "alice", Currency: "USD", TotalCents: 120,
					Status: orderv1.OrderStatus_ORDER_STATUS_PENDING, PaymentMethod: "card",
					Items: []*orderv1.OrderItem{{Sku: "sku-apple", Quantity: 1, UnitPriceCents: 120}}}
				if err := stores[0].Update(ctx, func(tx order.Tx) error { return tx.Insert(ctx, o) }); err != nil {
					t.Fatal(err)
				}
			}
			var wg sync.WaitGroup
			for i, id := range ids {
				wg.Go(func() {
					if err := replicas[i%2].HandleStockReserved(ctx, "r-"+id, &eventsv1.StockReserved{OrderId: id}); err != nil {
						t.Error(err)
					}
				})
				wg.Go(func() {
					if err := replicas[(i+1)%2].HandlePaymentCaptured(ctx, "p-"+id, &eventsv1.PaymentCaptured{OrderId: id, PaymentId: "pay-" + id}); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			for _, id := range ids {
				o, err := stores[1].Get(ctx, id)
				if err != nil || o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CONFIRMED || o.GetPaymentId() != "pay-"+id {
					t.Fatalf("order %s: %v (payment %q), %v; want CONFIRMED with its payment", id, o.GetStatus(), o.GetPaymentId(), err)
				}
				var confirmed int
				for _, env := range readOutbox(t, stores[0].DB(), id) {
					if env.GetType() == "shop.events.v1.OrderConfirmed" {
						confirmed++
					}
				}
				if confirmed != 1 {
					t.Fatalf("order %s: %d OrderConfirmed, want 1", id, confirmed)
				}
			}
		})
	}
}
