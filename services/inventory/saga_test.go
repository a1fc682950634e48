package inventory_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/events/eventstest"
	"github.com/acme/shopgate/services/inventory"
	"google.golang.org/protobuf/proto"
)

// outbox returns the payload types recorded in the outbox for orderID, oldest first.
func (h *harness) outbox(t *testing.T, orderID string) []string {
	t.Helper()
	var types []string
	for _, env := range h.envelopes(t, orderID) {
		types = append(types, env.GetType())
	}
	return types
}

// envelopes returns the envelopes recorded in the outbox for orderID, oldest first, each
// checked to come from inventory.
func (h *harness) envelopes(t *testing.T, orderID string) []*eventsv1.Envelope {
	t.Helper()
	envs := eventstest.Outbox(t, h.store.DB(), orderID)
	return checkSource(t, envs)
}

// eventsOf returns the types of the events store recorded for orderID, oldest first.
func eventsOf(t *testing.T, store *inventory.SQLStore, orderID string) []string {
	t.Helper()
	var types []string
	for _, env := range checkSource(t, eventstest.Outbox(t, store.DB(), orderID)) {
		types = append(types, env.GetType())
	}
	return types
}

// checkSource fails t unless every envelope comes from inventory.
func checkSource(t *testing.T, envs []*eventsv1.Envelope) []*eventsv1.Envelope {
	t.Helper()
	for _, env := range envs {
		if env.GetSource() != "inventory" {
			t.Fatalf("source %q", env.GetSource())
		}
	}
	return envs
}

// The trace contexts the saga tests hand over (eventstest).
var createdTrace, cancelledTrace = eventstest.CreatedTrace, eventstest.CancelledTrace

func (h *harness) stock(t *testing.T, sku string) (available, reserved int32) {
	t.Helper()
	it, err := h.client.GetItem(context.Background(), &inventoryv1.GetItemRequest{Sku: sku})
	if err != nil {
		t.Fatal(err)
	}
	return it.GetAvailable(), it.GetReserved()
}

func created(orderID string, lines ...*eventsv1.Line) *eventsv1.OrderCreated {
	return &eventsv1.OrderCreated{OrderId: orderID, CustomerId: "alice", Lines: lines, Currency: "USD"}
}

func line(sku string, q int32) *eventsv1.Line { return &eventsv1.Line{Sku: sku, Quantity: q} }

const (
	reserved  = "shop.events.v1.StockReserved"
	rejected  = "shop.events.v1.StockRejected"
	released  = "shop.events.v1.StockReleased"
	applesSKU = "sku-apple"
)

func TestSagaSteps(t *testing.T) {
	ctx := context.Background()
	type step struct {
		eventID string
		ev      proto.Message
	}
	tests := []struct {
		name          string
		steps         []step
		wantAvailable int32
		wantReserved  int32
		wantEvents    []string
	}{
		{
			name:          "reserve once despite redelivery",
			steps:         []step{{"e1", created("o1", line(applesSKU, 3))}, {"e1", created("o1", line(applesSKU, 3))}},
			wantAvailable: 97, wantReserved: 3, wantEvents: []string{reserved},
		},
		{
			name:          "same order under a new event id is not reserved twice",
			steps:         []step{{"e1", created("o1", line(applesSKU, 3))}, {"e2", created("o1", line(applesSKU, 3))}},
			wantAvailable: 97, wantReserved: 3, wantEvents: []string{reserved},
		},
		{
			name:          "out of stock rejects and holds nothing",
			steps:         []step{{"e1", created("o1", line(applesSKU, 2), line("sku-pear", 6))}},
			wantAvailable: 100, wantReserved: 0, wantEvents: []string{rejected},
		},
		{
			name:          "unknown sku rejects",
			steps:         []step{{"e1", created("o1", line("sku-nope", 1))}},
			wantAvailable: 100, wantReserved: 0, wantEvents: []string{rejected},
		},
		{
			name: "confirm takes the units out of stock",
			steps: []step{{"e1", created("o1", line(applesSKU, 3))}, {"e2", &eventsv1.OrderConfirmed{OrderId: "o1"}},
				{"e2", &eventsv1.OrderConfirmed{OrderId: "o1"}}},
			wantAvailable: 97, wantReserved: 0, wantEvents: []string{reserved},
		},
		{
			name: "cancel releases once",
			steps: []step{{"e1", created("o1", line(applesSKU, 3))}, {"e2", &eventsv1.OrderCancelled{OrderId: "o1", Reason: "payment declined"}},
				{"e2", &eventsv1.OrderCancelled{OrderId: "o1"}}, {"e3", &eventsv1.OrderCancelled{OrderId: "o1"}}},
			wantAvailable: 100, wantReserved: 0, wantEvents: []string{reserved, released},
		},
		{
			name:          "cancel before created leaves a tombstone",
			steps:         []step{{"e1", &eventsv1.OrderCancelled{OrderId: "o1"}}, {"e2", created("o1", line(applesSKU, 3))}},
			wantAvailable: 100, wantReserved: 0, wantEvents: nil,
		},
		{
			name:          "confirm after a release changes nothing",
			steps:         []step{{"e1", created("o1", line(applesSKU, 3))}, {"e2", &eventsv1.OrderCancelled{OrderId: "o1"}}, {"e3", &eventsv1.OrderConfirmed{OrderId: "o1"}}},
			wantAvailable: 100, wantReserved: 0, wantEvents: []string{reserved, released},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.put(t, apple(), with(func(it *inventoryv1.Item) { it.Sku = "sku-pear"; it.Available = 5 }))
			notified := 0
			h.svc.SetNotify(func() { notified++ })
			for _, st := range tc.steps {
				var err error
				switch ev := st.ev.(type) {
				case *eventsv1.OrderCreated:
					err = h.svc.HandleOrderCreated(events.WithTraceContext(ctx, createdTrace), st.eventID, ev)
				case *eventsv1.OrderConfirmed:
					err = h.svc.HandleOrderConfirmed(ctx, st.eventID, ev)
				case *eventsv1.OrderCancelled:
					err = h.svc.HandleOrderCancelled(events.WithTraceContext(ctx, cancelledTrace), st.eventID, ev)
				}
				if err != nil {
					t.Fatalf("%s: %v", st.eventID, err)
				}
			}
			a, r := h.stock(t, applesSKU)
			if a != tc.wantAvailable || r != tc.wantReserved {
				t.Fatalf("apples available=%d reserved=%d, want %d/%d", a, r, tc.wantAvailable, tc.wantReserved)
			}
			got := h.outbox(t, "o1")
			if fmt.Sprint(got) != fmt.Sprint(tc.wantEvents) {
				t.Fatalf("events %v, want %v", got, tc.wantEvents)
			}
			if notified != len(tc.wantEvents) {
				t.Fatalf("notified %d times for %d events", notified, len(tc.wantEvents))
			}
			for _, env := range h.envelopes(t, "o1") {
				want := createdTrace // StockReserved, StockRejected
				if env.GetType() == released {
					want = cancelledTrace
				}
				if got := env.GetTraceContext(); !maps.Equal(got, want) {
					t.Fatalf("%s trace context %v, want the handled event's %v", env.GetType(), got, want)
				}
			}
		})
	}
}

func TestConcurrentReservations(t *testing.T) {
	h := newHarness(t)
	h.put(t, with(func(it *inventoryv1.Item) { it.Available = 10 }))
	const orders = 100
	var wg sync.WaitGroup
	for i := range orders {
		wg.Go(func() {
			id := fmt.Sprintf("o%03d", i)
			if err := h.svc.HandleOrderCreated(context.Background(), "e-"+id, created(id, line(applesSKU, 1))); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	a, r := h.stock(t, applesSKU)
	if a != 0 || r != 10 {
		t.Fatalf("available=%d reserved=%d, want 0/10", a, r)
	}
	var nReserved, nRejected int
	for i := range orders {
		for _, typ := range h.outbox(t, fmt.Sprintf("o%03d", i)) {
			switch typ {
			case reserved:
				nReserved++
			case rejected:
				nRejected++
			}
		}
	}
	if nReserved != 10 || nRejected != orders-10 {
		t.Fatalf("reserved %d, rejected %d; want 10 and %d", nReserved, nRejected, orders-10)
	}
}

// TestUpsertKeepsReserved: an admin replacing an item sets its available units; the units held
// by pending orders stay held and are still released or committed correctly afterwards.
func TestUpsertKeepsReserved(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name          string
		newAvailable  int32
		then          func(h *harness) error
		wantAvailable int32
		wantReserved  int32
	}{
		{"replace keeps the hold", 7, func(*harness) error { return nil }, 7, 4},
		{"release after replace gives the units back", 7, func(h *harness) error {
			return h.svc.HandleOrderCancelled(ctx, "c1", &eventsv1.OrderCancelled{OrderId: "o1"})
		}, 11, 0},
		{"commit after replace takes them for good", 0, func(h *harness) error {
			return h.svc.HandleOrderConfirmed(ctx, "c1", &eventsv1.OrderConfirmed{OrderId: "o1"})
		}, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			h.put(t, apple())
			if err := h.svc.HandleOrderCreated(ctx, "e1", created("o1", line(applesSKU, 4))); err != nil {
				t.Fatal(err)
			}
			got, err := h.client.UpsertItem(admin(), &inventoryv1.UpsertItemRequest{Item: with(func(it *inventoryv1.Item) {
				it.Available = tc.newAvailable
				it.Reserved = 0 // output only: must not clear the hold
				it.PriceCents = 130
			})})
			if err != nil || got.GetReserved() != 4 || got.GetAvailable() != tc.newAvailable || got.GetPriceCents() != 130 {
				t.Fatalf("upsert returned %v, %v", got, err)
			}
			if err := tc.then(h); err != nil {
				t.Fatal(err)
			}
			a, r := h.stock(t, applesSKU)
			if a != tc.wantAvailable || r != tc.wantReserved {
				t.Fatalf("available=%d reserved=%d, want %d/%d", a, r, tc.wantAvailable, tc.wantReserved)
			}
		})
	}
}

// TestStockConstraints: the schema itself refuses negative stock, whatever the code does.
func TestStockConstraints(t *testing.T) {
	h := newHarness(t)
	h.put(t, apple())
	for _, stmt := range []string{
		`UPDATE items SET available = -1 WHERE sku = 'sku-apple'`,
		`UPDATE items SET reserved = -1 WHERE sku = 'sku-apple'`,
		`UPDATE items SET price_cents = -1 WHERE sku = 'sku-apple'`,
	} {
		t.Run(stmt, func(t *testing.T) {
			if _, err := h.store.DB().Exec(stmt); err == nil || !strings.Contains(strings.ToUpper(err.Error()), "CHECK") {
				t.Fatalf("got %v, want a CHECK constraint failure", err)
			}
		})
	}
}
