package order_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/order"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// hour keeps the poll out of the tests that must be woken by the in-process notification.
const hour = time.Hour

func TestWatchOrder(t *testing.T) {
	tests := []struct {
		name       string
		finish     func(h *harness, id string)
		wantStatus []orderv1.OrderStatus
	}{
		{
			name:       "pending then confirmed",
			finish:     func(h *harness, id string) { confirm(t, h, id) },
			wantStatus: []orderv1.OrderStatus{orderv1.OrderStatus_ORDER_STATUS_PENDING, orderv1.OrderStatus_ORDER_STATUS_CONFIRMED},
		},
		{
			name: "pending then cancelled by the customer",
			finish: func(h *harness, id string) {
				if _, err := h.client.CancelOrder(alice(), &orderv1.CancelOrderRequest{Id: id}); err != nil {
					t.Error(err)
				}
			},
			wantStatus: []orderv1.OrderStatus{orderv1.OrderStatus_ORDER_STATUS_PENDING, orderv1.OrderStatus_ORDER_STATUS_CANCELLED},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, order.Options{PollInterval: hour})
			o := h.create(t, alice(), lines("sku-apple", 1)...)
			stream, err := h.client.WatchOrder(alice(), &orderv1.WatchOrderRequest{Id: o.GetId()})
			if err != nil {
				t.Fatal(err)
			}
			first, err := stream.Recv()
			if err != nil || first.GetStatus() != tc.wantStatus[0] {
				t.Fatalf("first message %v, %v", first.GetStatus(), err)
			}
			tc.finish(h, o.GetId())
			var got []orderv1.OrderStatus
			got = append(got, first.GetStatus())
			for {
				m, err := stream.Recv()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("stream: %v", err)
				}
				got = append(got, m.GetStatus())
			}
			if got[len(got)-1] != tc.wantStatus[len(tc.wantStatus)-1] || got[0] != tc.wantStatus[0] {
				t.Fatalf("statuses %v, want %v", got, tc.wantStatus)
			}
			eventually(t, "watcher to leave", func() bool { return h.svc.Watchers() == 0 })
		})
	}
}

func TestWatchOrderEnds(t *testing.T) {
	h := newHarness(t, order.Options{PollInterval: hour})
	o := h.create(t, alice(), lines("sku-apple", 1)...)
	t.Run("final order: one message then the end", func(t *testing.T) {
		done := h.create(t, alice(), lines("sku-apple", 1)...)
		confirm(t, h, done.GetId())
		stream, err := h.client.WatchOrder(alice(), &orderv1.WatchOrderRequest{Id: done.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		m, err := stream.Recv()
		if err != nil || m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CONFIRMED {
			t.Fatalf("got %v, %v", m, err)
		}
		if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
			t.Fatalf("stream did not end: %v", err)
		}
	})
	for _, tc := range []struct {
		name string
		ctx  context.Context
		id   string
		code codes.Code
	}{
		{"someone else's order", bob(), o.GetId(), codes.NotFound},
		{"anonymous", context.Background(), o.GetId(), codes.Unauthenticated},
		{"malformed id", alice(), "a/b", codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stream, err := h.client.WatchOrder(tc.ctx, &orderv1.WatchOrderRequest{Id: tc.id})
			if err == nil {
				_, err = stream.Recv()
			}
			if status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
		})
	}
	t.Run("client going away frees the watcher", func(t *testing.T) {
		ctx, cancel := context.WithCancel(alice())
		stream, err := h.client.WatchOrder(ctx, &orderv1.WatchOrderRequest{Id: o.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "watcher to subscribe", func() bool { return h.svc.Watchers() == 1 })
		cancel()
		eventually(t, "watcher to leave", func() bool { return h.svc.Watchers() == 0 })
	})
	t.Run("close ends open streams", func(t *testing.T) {
		stream, err := h.client.WatchOrder(alice(), &orderv1.WatchOrderRequest{Id: o.GetId()})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stream.Recv(); err != nil {
			t.Fatal(err)
		}
		h.svc.Close()
		if _, err := stream.Recv(); status.Code(err) != codes.Unavailable {
			t.Fatalf("after Close: %v", err)
		}
		eventually(t, "watcher to leave", func() bool { return h.svc.Watchers() == 0 })
	})
}

// TestWatchSeesOtherInstance: a change committed by a second service instance on the same
// database reaches the watcher through the poll.
func TestWatchSeesOtherInstance(t *testing.T) {
	h := newHarness(t, order.Options{PollInterval: 20 * time.Millisecond})
	o := h.create(t, alice(), lines("sku-apple", 1)...)
	stream, err := h.client.WatchOrder(alice(), &orderv1.WatchOrderRequest{Id: o.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	other := openOrder(t, h.dir+"/order.db")
	defer other.Close()
	second := order.New(other, h.inv, order.Options{Logger: quiet})
	defer second.Close()
	if err := second.HandleStockRejected(context.Background(), "e1", &eventsv1.StockRejected{OrderId: o.GetId(), Reason: "out of stock: sku sku-apple"}); err != nil {
		t.Fatal(err)
	}
	m, err := stream.Recv()
	if err != nil || m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("got %v, %v", m.GetStatus(), err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream did not end: %v", err)
	}
}
