package order_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/order"
	"github.com/acme/shopgate/services/payment"
	"google.golang.org/protobuf/proto"
)

// flow wires the three services' saga handlers by hand, the way the relay and the consumers
// do, without a broker: it reads each outbox, delivers every event twice to its consumers
// (through their Subscriptions, as events.Consume does) and marks it published, until nothing
// is left.
type flow struct {
	t        *testing.T
	payDB    *payment.SQLStore
	dbs      []*sql.DB
	handlers map[string][]events.Handler // event type -> the consumers' handlers
	reverse  bool                        // deliver each round newest first, so cancellations overtake creations
}

func newFlow(t *testing.T, h *harness) *flow {
	payStore := openPayment(t, filepath.Join(h.dir, "payment.db"))
	t.Cleanup(func() { _ = payStore.Close() })
	f := &flow{
		t: t, payDB: payStore,
		dbs:      []*sql.DB{h.store.DB(), h.invStore.DB(), payStore.DB()},
		handlers: make(map[string][]events.Handler),
	}
	for _, c := range []events.Consumer{
		h.svc.Subscriptions(),
		inventory.New(h.invStore, inventory.Options{Logger: quiet}).Subscriptions(),
		payment.New(payStore, payment.Options{Logger: quiet}).Subscriptions(),
	} {
		for _, typ := range c.Types() {
			f.handlers[typ] = append(f.handlers[typ], c.Handler())
		}
	}
	return f
}

// deliver hands env to each consumer of its type (StockReleased and PaymentRefunded have none).
func (f *flow) deliver(env *eventsv1.Envelope) error {
	data, err := proto.Marshal(env)
	if err != nil {
		return err
	}
	msg := events.Message{Type: env.GetType(), ID: env.GetEventId(), Data: data}
	for _, h := range f.handlers[env.GetType()] {
		if err := h(context.Background(), msg); err != nil {
			return err
		}
	}
	return nil
}

// envelopes returns every envelope the three services recorded for orderID.
func (f *flow) envelopes(orderID string) []*eventsv1.Envelope {
	f.t.Helper()
	var out []*eventsv1.Envelope
	for _, db := range f.dbs {
		out = append(out, readOutbox(f.t, db, orderID)...)
	}
	return out
}

// run pumps events until every outbox is published.
func (f *flow) run() {
	f.t.Helper()
	for round := 0; ; round++ {
		if round > 20 {
			f.t.Fatal("the saga does not settle")
		}
		var batch []*eventsv1.Envelope
		for _, db := range f.dbs {
			rows, err := db.Query(`SELECT envelope FROM outbox WHERE published_at IS NULL ORDER BY seq`)
			if err != nil {
				f.t.Fatal(err)
			}
			for rows.Next() {
				var b []byte
				env := &eventsv1.Envelope{}
				if err := rows.Scan(&b); err != nil || proto.Unmarshal(b, env) != nil {
					f.t.Fatal("bad outbox row")
				}
				batch = append(batch, env)
			}
			rows.Close()
			if _, err := db.Exec(`UPDATE outbox SET published_at = 1 WHERE published_at IS NULL`); err != nil {
				f.t.Fatal(err)
			}
		}
		if len(batch) == 0 {
			return
		}
		if f.reverse {
			slices.Reverse(batch)
		}
		for _, env := range batch {
			for range 2 { // at-least-once: every event arrives twice
				if err := f.deliver(env); err != nil {
					f.t.Fatalf("%s: %v", env.GetType(), err)
				}
			}
		}
	}
}

// TestSagaFlow runs whole orders through the three services' handlers and checks that each
// ends final with stock and payments consistent, and that every event carries the trace context
// of the request it follows from: the creation's, or the customer's cancel's for the
// cancellation and its compensations.
func TestSagaFlow(t *testing.T) {
	tests := []struct {
		name          string
		quantity      int
		method        string
		cancelAtOnce  bool
		reverse       bool
		wantStatus    orderv1.OrderStatus
		wantReason    string
		wantAvailable int32
		wantPayment   paymentv1.PaymentStatus // UNSPECIFIED: no payment
		wantEvents    string                  // every service's events for the order, sorted
	}{
		{name: "confirmed", quantity: 3, wantStatus: orderv1.OrderStatus_ORDER_STATUS_CONFIRMED,
			wantAvailable: 97, wantPayment: paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED,
			wantEvents: "[OrderConfirmed OrderCreated PaymentCaptured StockReserved]"},
		{name: "out of stock: payment refunded", quantity: 101, wantStatus: orderv1.OrderStatus_ORDER_STATUS_CANCELLED,
			wantReason: "out of stock: sku sku-apple", wantAvailable: 100, wantPayment: paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED,
			wantEvents: "[OrderCancelled OrderCreated PaymentCaptured PaymentRefunded StockRejected]"},
		{name: "declined: stock released", quantity: 3, method: "pm_card_declined", wantStatus: orderv1.OrderStatus_ORDER_STATUS_CANCELLED,
			wantReason: "payment declined: card declined", wantAvailable: 100, wantPayment: paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED,
			wantEvents: "[OrderCancelled OrderCreated PaymentDeclined StockReleased StockReserved]"},
		{name: "customer cancel: both undone", quantity: 3, cancelAtOnce: true, wantStatus: orderv1.OrderStatus_ORDER_STATUS_CANCELLED,
			wantReason: "cancelled by customer", wantAvailable: 100, wantPayment: paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED,
			wantEvents: "[OrderCancelled OrderCreated PaymentCaptured PaymentRefunded StockReleased StockReserved]"},
		{name: "customer cancel overtaking the creation: tombstones", quantity: 3, cancelAtOnce: true, reverse: true,
			wantStatus: orderv1.OrderStatus_ORDER_STATUS_CANCELLED, wantReason: "cancelled by customer", wantAvailable: 100,
			wantEvents: "[OrderCancelled OrderCreated]"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, order.Options{})
			f := newFlow(t, h)
			f.reverse = tc.reverse
			o, err := h.client.CreateOrder(alice(traceMD(createTrace)...), &orderv1.CreateOrderRequest{Items: lines("sku-apple", tc.quantity), PaymentMethod: tc.method})
			if err != nil {
				t.Fatal(err)
			}
			if tc.cancelAtOnce {
				if _, err := h.client.CancelOrder(alice(traceMD(cancelTrace)...), &orderv1.CancelOrderRequest{Id: o.GetId()}); err != nil {
					t.Fatal(err)
				}
			}
			f.run()
			got, err := h.client.GetOrder(alice(), &orderv1.GetOrderRequest{Id: o.GetId()})
			if err != nil || got.GetStatus() != tc.wantStatus || got.GetStatusReason() != tc.wantReason {
				t.Fatalf("order %v %q, %v; want %v %q", got.GetStatus(), got.GetStatusReason(), err, tc.wantStatus, tc.wantReason)
			}
			it, err := h.inv.GetItem(context.Background(), &inventoryv1.GetItemRequest{Sku: "sku-apple"})
			if err != nil || it.GetAvailable() != tc.wantAvailable || it.GetReserved() != 0 {
				t.Fatalf("stock %d available, %d reserved, %v; want %d/0", it.GetAvailable(), it.GetReserved(), err, tc.wantAvailable)
			}
			pays, err := f.payDB.ListByOrder(context.Background(), o.GetId())
			if err != nil || len(pays) > 1 {
				t.Fatalf("%d payments, %v", len(pays), err)
			}
			var st paymentv1.PaymentStatus
			if len(pays) == 1 {
				st = pays[0].GetStatus()
				if pays[0].GetAmountCents() != o.GetTotalCents() {
					t.Fatalf("charged %d for a total of %d", pays[0].GetAmountCents(), o.GetTotalCents())
				}
			}
			if st != tc.wantPayment {
				t.Fatalf("payment %v, want %v", st, tc.wantPayment)
			}
			envs := f.envelopes(o.GetId())
			var kinds []string
			for _, env := range envs {
				kinds = append(kinds, strings.TrimPrefix(env.GetType(), "shop.events.v1."))
			}
			slices.Sort(kinds)
			if fmt.Sprint(kinds) != tc.wantEvents {
				t.Fatalf("events %v, want %s", kinds, tc.wantEvents)
			}
			for _, env := range envs {
				want := createTrace
				switch env.GetType() {
				case cancelled, "shop.events.v1.StockReleased", "shop.events.v1.PaymentRefunded":
					if tc.cancelAtOnce {
						want = cancelTrace
					}
				}
				if carried := env.GetTraceContext(); !maps.Equal(carried, want) {
					t.Errorf("%s from %s: trace context %v, want %v", env.GetType(), env.GetSource(), carried, want)
				}
			}
		})
	}
}
