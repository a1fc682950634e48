package order_test

import (
	"context"
	"fmt"
	"maps"
	"testing"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/order"
	"google.golang.org/protobuf/proto"
)

const (
	created   = "shop.events.v1.OrderCreated"
	confirmed = "shop.events.v1.OrderConfirmed"
	cancelled = "shop.events.v1.OrderCancelled"
)

func TestSagaOutcomes(t *testing.T) {
	type step struct {
		eventID string
		ev      proto.Message
	}
	reserved := func(id string) proto.Message { return &eventsv1.StockReserved{OrderId: id} }
	rejected := func(id string) proto.Message {
		return &eventsv1.StockRejected{OrderId: id, Reason: "out of stock: sku sku-apple"}
	}
	captured := func(id string) proto.Message { return &eventsv1.PaymentCaptured{OrderId: id, PaymentId: "pay-1"} }
	declined := func(id string) proto.Message {
		return &eventsv1.PaymentDeclined{OrderId: id, PaymentId: "pay-1", Reason: "card declined"}
	}
	tests := []struct {
		name       string
		steps      func(id string) []step
		wantStatus orderv1.OrderStatus
		wantReason string
		wantEvents []string
		wantPayID  string
	}{
		{
			name:       "reserved then captured confirms",
			steps:      func(id string) []step { return []step{{"a", reserved(id)}, {"b", captured(id)}} },
			wantStatus: orderv1.OrderStatus_ORDER_STATUS_CONFIRMED, wantEvents: []string{created, confirmed}, wantPayID: "pay-1",
		},
		{
			name:       "captured then reserved confirms",
			steps:      func(id string) []step { return []step{{"b", captured(id)}, {"a", reserved(id)}} },
			wantStatus: orderv1.OrderStatus_ORDER_STATUS_CONFIRMED, wantEvents: []string{created, confirmed}, wantPayID: "pay-1",
		},
		{
			name: "redelivered outcomes confirm once",
			steps: func(id string) []step {
				return []step{{"a", reserved(id)}, {"b", captured(id)}, {"b", captured(id)}, {"a", reserved(id)}}
			},
			wantStatus: orderv1.OrderStatus_ORDER_STATUS_CONFIRMED, wantEvents: []string{created, confirmed}, wantPayID: "pay-1",
		},
		{
			name:       "only one half is still pending",
			steps:      func(id string) []step { return []step{{"a", reserved(id)}, {"a", reserved(id)}} },
			wantStatus: orderv1.OrderStatus_ORDER_STATUS_PENDING, wantEvents: []string{created},
		},
		{
			name:       "out of stock cancels",
			steps:      func(id string) []step { return []step{{"a", rejected(id)}} },
			wantStatus: orderv1.OrderStatus_ORDER_STATUS_CANCELLED, wantReason: "out of stock: sku sku-apple", wantEvents: []string{created, cancelled},
		},
		{
			name:       "declined cancels and a late reservation changes nothing",
			steps:      func(id string) []step { return []step{{"b", declined(id)}, {"a", reserved(id)}} },
			wantStatus: orderv1.OrderStatus_ORDER_STATUS_CANCELLED, wantReason: "payment declined: card declined", wantEvents: []string{created, cancelled}, wantPayID: "pay-1",
		},
		{
			name:       "first failure wins, second failure changes nothing",
			steps:      func(id string) []step { return []step{{"a", rejected(id)}, {"b", declined(id)}} },
			wantStatus: orderv1.OrderStatus_ORDER_STATUS_CANCELLED, wantReason: "out of stock: sku sku-apple", wantEvents: []string{created, cancelled},
		},
		{
			name:       "late capture after a failure changes nothing",
			steps:      func(id string) []step { return []step{{"a", rejected(id)}, {"b", captured(id)}} },
			wantStatus: orderv1.OrderStatus_ORDER_STATUS_CANCELLED, wantReason: "out of stock: sku sku-apple", wantEvents: []string{created, cancelled},
		},
	}
	h := newHarness(t, order.Options{})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := h.create(t, alice(), lines("sku-apple", 1)...)
			notified := 0
			h.svc.SetNotify(func() { notified++ })
			ctx := events.WithTraceContext(context.Background(), createTrace) // as events.On passes it
			for _, st := range tc.steps(o.GetId()) {
				id := st.eventID + "-" + o.GetId()
				var err error
				switch ev := st.ev.(type) {
				case *eventsv1.StockReserved:
					err = h.svc.HandleStockReserved(ctx, id, ev)
				case *eventsv1.StockRejected:
					err = h.svc.HandleStockRejected(ctx, id, ev)
				case *eventsv1.PaymentCaptured:
					err = h.svc.HandlePaymentCaptured(ctx, id, ev)
				case *eventsv1.PaymentDeclined:
					err = h.svc.HandlePaymentDeclined(ctx, id, ev)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			got, err := h.client.GetOrder(alice(), &orderv1.GetOrderRequest{Id: o.GetId()})
			if err != nil {
				t.Fatal(err)
			}
			if got.GetStatus() != tc.wantStatus || got.GetStatusReason() != tc.wantReason || got.GetPaymentId() != tc.wantPayID {
				t.Fatalf("order %v %q pay=%q; want %v %q pay=%q", got.GetStatus(), got.GetStatusReason(), got.GetPaymentId(),
					tc.wantStatus, tc.wantReason, tc.wantPayID)
			}
			envs := h.outbox(t, o.GetId())
			if fmt.Sprint(types(envs)) != fmt.Sprint(tc.wantEvents) {
				t.Fatalf("events %v, want %v", types(envs), tc.wantEvents)
			}
			if notified != len(tc.wantEvents)-1 {
				t.Fatalf("relay notified %d times, want %d", notified, len(tc.wantEvents)-1)
			}
			for _, env := range envs[1:] {
				if got := env.GetTraceContext(); !maps.Equal(got, createTrace) {
					t.Fatalf("%s trace context %v, want the handled event's %v", env.GetType(), got, createTrace)
				}
			}
			if last := envs[len(envs)-1]; last.GetType() == cancelled {
				ev := &eventsv1.OrderCancelled{}
				if err := last.GetPayload().UnmarshalTo(ev); err != nil || ev.GetReason() != tc.wantReason {
					t.Fatalf("OrderCancelled %v, %v", ev, err)
				}
			}
		})
	}
	t.Run("event for an unknown order is acknowledged", func(t *testing.T) {
		if err := h.svc.HandleStockReserved(context.Background(), "x", &eventsv1.StockReserved{OrderId: "nope"}); err != nil {
			t.Fatal(err)
		}
	})
}
