package payment_test

import (
	"context"
	"fmt"
	"github.com/acme/shopgate/services/storage/storagetest"
	"path/filepath"
	"sync"
	"testing"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/internal/testpg"
	"github.com/acme/shopgate/services/payment"
)

// TestPostgres runs the tests that touch the store again, on PostgreSQL: under it, the store a
// test opens at a path lives in a PostgreSQL schema of its own instead (source).
func TestPostgres(t *testing.T) {
	testpg.Need(t)
	t.Run("Saga", TestSaga)
	t.Run("ReadAndRefund", TestReadAndRefund)
}

// Two replicas of the payment service on one database: one receives OrderCreated while the
// other receives OrderCancelled of the same orders, at the same time. Whichever runs first, no
// cancelled order stays charged: either the cancellation came first (a tombstone, no payment),
// or the payment was captured and then refunded.
func TestReplicasChargeAndCancelConcurrently(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			if dialect == "postgres" {
				testpg.Need(t)
			}
			src := storagetest.SourceOn(t, filepath.Join(t.TempDir(), "payment.db"), dialect == "postgres")
			ctx := context.Background()
			var replicas []*payment.Service
			var stores []*payment.SQLStore
			for range 2 {
				s, err := payment.Open(ctx, src)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				replicas, stores = append(replicas, payment.New(s, payment.Options{Logger: quiet})), append(stores, s)
			}
			const orders = 20
			var wg sync.WaitGroup
			for i := range orders {
				id := fmt.Sprintf("order-%02d", i)
				wg.Go(func() {
					if err := replicas[i%2].HandleOrderCreated(ctx, "c-"+id, created(id, payment.MethodOK)); err != nil {
						t.Error(err)
					}
				})
				wg.Go(func() {
					if err := replicas[(i+1)%2].HandleOrderCancelled(ctx, "x-"+id, &eventsv1.OrderCancelled{OrderId: id}); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			for i := range orders {
				id := fmt.Sprintf("order-%02d", i)
				ps, err := stores[1].ListByOrder(ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range ps {
					if p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED {
						t.Errorf("order %s cancelled, its payment %s", id, p.GetStatus())
					}
				}
			}
		})
	}
}
