package order_test

import (
	"context"
	"errors"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/order"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestPendingCollector creates orders on the real service and store, settles some, and reads
// the orders_pending gauges as a scrape would.
func TestPendingCollector(t *testing.T) {
	h := newHarness(t, order.Options{})
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func() time.Time { return at }
	tests := []struct {
		name       string
		create     int // orders created before the scrape
		cancel     int // of them cancelled (no longer pending)
		wantCount  float64
		wantAgeMin float64 // the oldest pending order is at least this old (s)
	}{
		{"none", 0, 0, 0, 0},
		{"three pending", 3, 0, 3, 1},
		{"one more, two cancelled", 1, 2, 2, 1},
	}
	var ids []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range tt.create {
				o, err := h.client.CreateOrder(alice(), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, o.GetId())
			}
			for _, id := range ids[:tt.cancel] {
				if _, err := h.client.CancelOrder(alice(), &orderv1.CancelOrderRequest{Id: id}); err != nil {
					t.Fatal(err)
				}
			}
			ids = ids[tt.cancel:]
			at = h.clock.Now().Add(time.Second) // the scrape comes a second after the last order
			reg := prometheus.NewRegistry()
			reg.MustRegister(order.PendingCollector(h.store, quiet, now))
			if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP orders_pending Orders in PENDING: accepted, the saga not yet settled.
# TYPE orders_pending gauge
orders_pending `+strconv.FormatFloat(tt.wantCount, 'f', -1, 64)+`
`), "orders_pending"); err != nil {
				t.Error(err)
			}
			mfs, err := reg.Gather()
			if err != nil {
				t.Fatal(err)
			}
			for _, mf := range mfs {
				if mf.GetName() != "orders_pending_oldest_age_seconds" {
					continue
				}
				age := mf.GetMetric()[0].GetGauge().GetValue()
				if tt.wantCount == 0 && age != 0 || tt.wantCount > 0 && age < tt.wantAgeMin {
					t.Errorf("oldest pending age %v, want >= %v (0 with none pending)", age, tt.wantAgeMin)
				}
			}
		})
	}
}

type failingSource struct{}

func (failingSource) Pending(context.Context) (order.PendingStats, error) {
	return order.PendingStats{}, errors.New("database is locked")
}

// TestPendingCollectorFailure: a failed query reads NaN and the scrape is still served.
func TestPendingCollectorFailure(t *testing.T) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(order.PendingCollector(failingSource{}, quiet, nil))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("the scrape failed: %v", err)
	}
	if len(mfs) != 2 {
		t.Fatalf("%d metric families, want 2", len(mfs))
	}
	for _, mf := range mfs {
		if v := mf.GetMetric()[0].GetGauge().GetValue(); !math.IsNaN(v) {
			t.Errorf("%s = %v, want NaN", mf.GetName(), v)
		}
	}
}
