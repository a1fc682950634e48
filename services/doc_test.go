package services_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/order"
	"github.com/acme/shopgate/services/payment"
)

// openStore opens a service's store in a temporary directory, closed when the test ends.
func openStore[S interface{ Close() error }](t *testing.T, open func(path string) (S, error)) S {
	t.Helper()
	store, err := open(filepath.Join(t.TempDir(), "service.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	return store
}

// TestSubscriptionsMatchTheDiagram pins the "who consumes what" table of the package doc to
// the services' subscriptions.
func TestSubscriptionsMatchTheDiagram(t *testing.T) {
	tests := []struct {
		name string
		open func(t *testing.T) events.Consumer
		want []string
	}{
		{"order", func(t *testing.T) events.Consumer {
			svc := order.New(openStore(t, order.OpenSQLite), nil, order.Options{})
			t.Cleanup(svc.Close)
			return svc.Subscriptions()
		}, []string{"StockReserved", "StockRejected", "PaymentCaptured", "PaymentDeclined"}},
		{"inventory", func(t *testing.T) events.Consumer {
			return inventory.New(openStore(t, inventory.OpenSQLite), inventory.Options{}).Subscriptions()
		}, []string{"OrderCreated", "OrderConfirmed", "OrderCancelled"}},
		{"payment", func(t *testing.T) events.Consumer {
			return payment.New(openStore(t, payment.OpenSQLite), payment.Options{}).Subscriptions()
		}, []string{"OrderCreated", "OrderCancelled"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.open(t)
			var got []string
			for _, typ := range c.Types() {
				got = append(got, strings.TrimPrefix(typ, "shop.events.v1."))
			}
			want := slices.Sorted(slices.Values(tc.want))
			if c.Name != tc.name || !slices.Equal(got, want) {
				t.Fatalf("consumer %q consumes %v, want %q consuming %v", c.Name, got, tc.name, want)
			}
		})
	}
}
