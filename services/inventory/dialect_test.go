package inventory_test

import (
	"context"
	"fmt"
	"github.com/acme/shopgate/services/storage/storagetest"
	"path/filepath"
	"sync"
	"testing"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/internal/testpg"
	"github.com/acme/shopgate/services/inventory"
)

// TestPostgres runs the tests that touch the store again, on PostgreSQL: under it, the store a
// test opens at a path lives in a PostgreSQL schema of its own instead (source).
func TestPostgres(t *testing.T) {
	testpg.Need(t)
	for _, tc := range []struct {
		name string
		run  func(*testing.T)
	}{
		{"UpsertItem", TestUpsertItem},
		{"GetItem", TestGetItem},
		{"ListItemsPagination", TestListItemsPagination},
		{"RestartPersistence", TestRestartPersistence},
		{"SagaSteps", TestSagaSteps},
		{"ConcurrentReservations", TestConcurrentReservations},
		{"UpsertKeepsReserved", TestUpsertKeepsReserved},
		{"StockConstraints", TestStockConstraints},
	} {
		t.Run(tc.name, tc.run)
	}
}

func openStore(t testing.TB, path string) *inventory.SQLStore {
	t.Helper()
	s, err := inventory.Open(context.Background(), storagetest.Source(t, path))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Two replicas of the inventory on one database. One receives OrderCreated while the other
// receives OrderCancelled of the same orders, at the same time: whichever runs first, no unit
// stays held (a reservation overwritten by the tombstone would hold its units for ever). Many
// OrderCreated on both replicas compete for a scarce item: exactly its units are reserved.
func TestReplicasReserveAndCancelConcurrently(t *testing.T) {
	for _, dialect := range []string{"sqlite", "postgres"} {
		t.Run(dialect, func(t *testing.T) {
			if dialect == "postgres" {
				testpg.Need(t)
			}
			src := storagetest.SourceOn(t, filepath.Join(t.TempDir(), "inventory.db"), dialect == "postgres")
			ctx := context.Background()
			var replicas []*inventory.Service
			var stores []*inventory.SQLStore
			for range 2 {
				s, err := inventory.Open(ctx, src)
				if err != nil {
					t.Fatal(err)
				}
				defer s.Close()
				replicas, stores = append(replicas, inventory.New(s, inventory.Options{Logger: quiet})), append(stores, s)
			}
			if err := stores[0].Update(ctx, func(tx inventory.Tx) error {
				if err := tx.PutItem(ctx, apple()); err != nil {
					return err
				}
				return tx.PutItem(ctx, &inventoryv1.Item{Sku: "sku-pear", Name: "Pear", PriceCents: 95, Currency: "USD", Available: 10})
			}); err != nil {
				t.Fatal(err)
			}
			const races, scarce = 20, 30
			var wg sync.WaitGroup
			for i := range races {
				id := fmt.Sprintf("race-%02d", i)
				wg.Go(func() {
					if err := replicas[i%2].HandleOrderCreated(ctx, "c-"+id, created(id, line(applesSKU, 2))); err != nil {
						t.Error(err)
					}
				})
				wg.Go(func() {
					if err := replicas[(i+1)%2].HandleOrderCancelled(ctx, "x-"+id, &eventsv1.OrderCancelled{OrderId: id}); err != nil {
						t.Error(err)
					}
				})
			}
			for i := range scarce {
				id := fmt.Sprintf("pear-%02d", i)
				wg.Go(func() {
					if err := replicas[i%2].HandleOrderCreated(ctx, "c-"+id, created(id, line("sku-pear", 1))); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			for _, tc := range []struct {
				sku                 string
				available, reserved int32
			}{{applesSKU, 100, 0}, {"sku-pear", 0, 10}} {
				it, err := stores[1].GetItem(ctx, tc.sku)
				if err != nil || it.GetAvailable() != tc.available || it.GetReserved() != tc.reserved {
					t.Errorf("%s: available %d reserved %d (%v); want %d/%d", tc.sku, it.GetAvailable(), it.GetReserved(), err, tc.available, tc.reserved)
				}
			}
			for i := range races {
				id := fmt.Sprintf("race-%02d", i)
				var r inventory.Reservation
				if err := stores[1].Update(ctx, func(tx inventory.Tx) (err error) { r, err = tx.Reservation(ctx, id); return err }); err != nil {
					t.Fatal(err)
				}
				if r.State != inventory.StateReleased && r.State != inventory.StateTombstone {
					t.Errorf("order %s: reservation %q, want released or tombstone", id, r.State)
				}
			}
			var nReserved int
			for i := range scarce {
				for _, env := range eventsOf(t, stores[0], fmt.Sprintf("pear-%02d", i)) {
					if env == reserved {
						nReserved++
					}
				}
			}
			if nReserved != 10 {
				t.Fatalf("%d StockReserved for the 10 pears", nReserved)
			}
		})
	}
}
