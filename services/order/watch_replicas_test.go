package order_test

import (
	"context"
	"errors"
	"io"
	"path/filepath"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/order"
	"github.com/acme/shopgate/services/pgnotify"
	"github.com/acme/shopgate/services/pgnotify/pgnotifytest"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// soon bounds the wait for a change another replica committed: the notification takes
// milliseconds, the poll (PollInterval: hour) would take an hour.
const soon = 5 * time.Second

// replicas are two instances of the order service on one database (one SQLite file), each with
// its own pgnotify.Feed on one channel, as two processes would be.
type replicas struct {
	h            *harness // replica A, its client h.client
	b            *order.Service
	bClient      orderv1.OrderServiceClient
	feedA, feedB *pgnotify.Feed
	url          string
}

func newReplicas(t *testing.T) *replicas {
	t.Helper()
	r := &replicas{url: pgnotifytest.URL(t)}
	ch := pgnotifytest.Channel(t)
	r.feedA, r.feedB = openFeed(t, r.url, ch), openFeed(t, r.url, ch) // closed after the services
	r.h = newHarness(t, order.Options{PollInterval: hour, Changes: r.feedA})
	storeB, err := order.OpenSQLite(filepath.Join(r.h.dir, "order.db"))
	if err != nil {
		t.Fatal(err)
	}
	r.b = order.New(storeB, r.h.inv, order.Options{Logger: quiet, Now: r.h.clock.Now, PollInterval: hour, Changes: r.feedB})
	conn, stop := serve(t, r.b.Register)
	r.bClient = orderv1.NewOrderServiceClient(conn)
	b := r.b
	t.Cleanup(func() { b.Close(); stop(); _ = storeB.Close() })
	return r
}

func openFeed(t *testing.T, url, channel string) *pgnotify.Feed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), soon)
	defer cancel()
	f, err := pgnotify.Open(ctx, url, pgnotify.Options{Channel: channel, Logger: quiet, MinBackoff: 5 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

// watch opens a WatchOrder stream of id on client (bounded by soon per message) and returns its
// first message.
func watch(t *testing.T, client orderv1.OrderServiceClient, id string) (grpc.ServerStreamingClient[orderv1.Order], *orderv1.Order) {
	t.Helper()
	ctx, cancel := context.WithCancel(alice())
	t.Cleanup(cancel)
	stream, err := client.WatchOrder(ctx, &orderv1.WatchOrderRequest{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	return stream, first
}

// recvSoon returns the stream's next message, failing t unless it arrives within soon.
func recvSoon(t *testing.T, stream grpc.ServerStreamingClient[orderv1.Order]) *orderv1.Order {
	t.Helper()
	type result struct {
		o   *orderv1.Order
		err error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() { o, err := stream.Recv(); done <- result{o, err} }()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("stream: %v", r.err)
		}
		t.Logf("change seen after %v", time.Since(start))
		return r.o
	case <-time.After(soon):
		t.Fatalf("the change did not arrive within %v (the poll is %v away)", soon, hour)
		return nil
	}
}

func expectEnd(t *testing.T, stream grpc.ServerStreamingClient[orderv1.Order]) {
	t.Helper()
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Fatalf("stream did not end: %v", err)
	}
}

// TestWatchSeesOtherReplicaAtOnce: a watcher on one replica sees the changes another replica
// commits at once, with the poll an hour away, in both directions.
func TestWatchSeesOtherReplicaAtOnce(t *testing.T) {
	r := newReplicas(t)
	ctx := context.Background()
	t.Run("saga steps on B reach a watcher on A", func(t *testing.T) {
		o := r.h.create(t, alice(), lines("sku-apple", 1)...)
		stream, first := watch(t, r.h.client, o.GetId())
		if first.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
			t.Fatalf("first %v", first.GetStatus())
		}
		if err := r.b.HandlePaymentCaptured(ctx, "pc-"+o.GetId(), &eventsv1.PaymentCaptured{OrderId: o.GetId(), PaymentId: "pay-1"}); err != nil {
			t.Fatal(err)
		}
		if m := recvSoon(t, stream); m.GetPaymentId() != "pay-1" || m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
			t.Fatalf("after the payment: %v %q", m.GetStatus(), m.GetPaymentId())
		}
		if err := r.b.HandleStockReserved(ctx, "sr-"+o.GetId(), &eventsv1.StockReserved{OrderId: o.GetId()}); err != nil {
			t.Fatal(err)
		}
		if m := recvSoon(t, stream); m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CONFIRMED {
			t.Fatalf("after the stock: %v", m.GetStatus())
		}
		expectEnd(t, stream)
	})
	t.Run("a cancel through A reaches a watcher on B", func(t *testing.T) {
		o := r.h.create(t, alice(), lines("sku-pear", 1)...)
		stream, _ := watch(t, r.bClient, o.GetId())
		if _, err := r.h.client.CancelOrder(alice(), &orderv1.CancelOrderRequest{Id: o.GetId()}); err != nil {
			t.Fatal(err)
		}
		if m := recvSoon(t, stream); m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
			t.Fatalf("got %v", m.GetStatus())
		}
		expectEnd(t, stream)
	})
	t.Run("a bare NOTIFY wakes every watcher", func(t *testing.T) {
		// A third instance without a feed commits silently; NOTIFY without a payload (what an
		// operator can send) makes every watcher re-read.
		o := r.h.create(t, alice(), lines("sku-apple", 1)...)
		stream, _ := watch(t, r.h.client, o.GetId())
		silentStore, err := order.OpenSQLite(filepath.Join(r.h.dir, "order.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer silentStore.Close()
		silent := order.New(silentStore, r.h.inv, order.Options{Logger: quiet, PollInterval: hour})
		defer silent.Close()
		if err := silent.HandleStockRejected(ctx, "rej-"+o.GetId(), &eventsv1.StockRejected{OrderId: o.GetId()}); err != nil {
			t.Fatal(err)
		}
		pgnotifytest.Exec(t, r.url, `NOTIFY "`+r.feedA.Channel()+`"`)
		if m := recvSoon(t, stream); m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
			t.Fatalf("got %v", m.GetStatus())
		}
		expectEnd(t, stream)
	})
}

// TestWatchAcrossListenerReconnect: A's listener loses its connection; a change B commits
// meanwhile is not lost (every watcher re-reads after the reconnect), and the next one arrives
// by notification again.
func TestWatchAcrossListenerReconnect(t *testing.T) {
	r := newReplicas(t)
	ctx := context.Background()
	during := r.h.create(t, alice(), lines("sku-apple", 1)...)
	after := r.h.create(t, alice(), lines("sku-apple", 1)...)
	duringStream, _ := watch(t, r.h.client, during.GetId())
	afterStream, _ := watch(t, r.h.client, after.GetId())

	pgnotifytest.Terminate(t, r.url, r.feedA.Stats().ListenerPID)
	if err := r.b.HandleStockRejected(ctx, "rej-1", &eventsv1.StockRejected{OrderId: during.GetId(), Reason: "out of stock: sku sku-apple"}); err != nil {
		t.Fatal(err)
	}
	if m := recvSoon(t, duringStream); m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("change during the reconnect: %v", m.GetStatus())
	}
	expectEnd(t, duringStream)
	eventually(t, "A's listener to reconnect", func() bool { return r.feedA.Stats().Reconnects == 1 })
	received := r.feedA.Stats().Received

	if err := r.b.HandleStockRejected(ctx, "rej-2", &eventsv1.StockRejected{OrderId: after.GetId(), Reason: "out of stock: sku sku-apple"}); err != nil {
		t.Fatal(err)
	}
	if m := recvSoon(t, afterStream); m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("change after the reconnect: %v", m.GetStatus())
	}
	expectEnd(t, afterStream)
	// The stream may have re-read on the reconnect's wake-up after B committed, before B's
	// notification (sent by B's publisher goroutine) arrived: wait for the notification itself.
	eventually(t, "A to receive B's notification after the reconnect", func() bool { return r.feedA.Stats().Received > received })
}

// TestWatchReplicaClose: Close ends a replica's streams and leaves its feed to its owner; the
// other replica keeps working.
func TestWatchReplicaClose(t *testing.T) {
	r := newReplicas(t)
	o := r.h.create(t, alice(), lines("sku-apple", 1)...)
	onB, _ := watch(t, r.bClient, o.GetId())
	onA, _ := watch(t, r.h.client, o.GetId())
	r.b.Close()
	if _, err := onB.Recv(); status.Code(err) != codes.Unavailable {
		t.Fatalf("B's stream after Close: %v", err)
	}
	eventually(t, "B's watcher to leave", func() bool { return r.b.Watchers() == 0 })
	// B's saga still commits (Close ends only its streams), and its change still reaches A.
	if err := r.b.HandleStockRejected(context.Background(), "rej", &eventsv1.StockRejected{OrderId: o.GetId()}); err != nil {
		t.Fatal(err)
	}
	if m := recvSoon(t, onA); m.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED {
		t.Fatalf("A after B closed: %v", m.GetStatus())
	}
	expectEnd(t, onA)
}
