package order

import (
	"sync"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/passport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// Changes carries "this order changed" between the replicas of the service; pgnotify.Feed
// implements it over PostgreSQL LISTEN/NOTIFY. A change is a hint that carries no data: the
// watchers it wakes re-read the order, so a duplicate or merged one is harmless and a lost one is
// caught by the poll.
type Changes interface {
	// Publish announces that the order orderID changed; the service calls it after the commit.
	// It must not block.
	Publish(orderID string)
	// Subscribe calls changed with the id of each order another replica changed, and missed
	// when changes may have been lost (every watcher then re-reads its order), until cancel.
	// Both must be safe to call from another goroutine, even just after cancel; the service's
	// do not block.
	Subscribe(changed func(orderID string), missed func()) (cancel func())
}

// WatchOrder implements OrderServiceServer: sends the order now and again each time it changes,
// and returns once it is CONFIRMED or CANCELLED. Changes committed by this instance wake it at
// once, and so do another instance's when both share Options.Changes; otherwise, or when a
// notification is lost, the change is seen at the next poll (Options.PollInterval). A client
// that goes away, or Close, ends it.
func (s *Service) WatchOrder(req *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.Order]) error {
	ctx := stream.Context()
	caller, err := passport.Require(ctx)
	if err != nil {
		return err
	}
	if _, err := s.visible(ctx, caller, req.GetId()); err != nil {
		return err
	}
	wake, closed, unsubscribe := s.changes.subscribe(req.GetId())
	defer unsubscribe()
	ticker := time.NewTicker(s.poll)
	defer ticker.Stop()
	var last *orderv1.Order
	for {
		o, err := s.store.Get(ctx, req.GetId())
		if err != nil {
			if ctx.Err() != nil {
				return status.FromContextError(ctx.Err()).Err()
			}
			return grpcserver.Internal(ctx, s.log, "watch order", err)
		}
		if last == nil || !proto.Equal(o, last) {
			if err := stream.Send(o); err != nil {
				return err
			}
			last = o
		}
		if final(o.GetStatus()) {
			return nil
		}
		select {
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-closed:
			return status.Error(codes.Unavailable, "server shutting down")
		case <-wake:
		case <-ticker.C:
		}
	}
}

func final(st orderv1.OrderStatus) bool {
	return st == orderv1.OrderStatus_ORDER_STATUS_CONFIRMED || st == orderv1.OrderStatus_ORDER_STATUS_CANCELLED
}

// broadcaster wakes the watchers of an order when it changes. A wake-up carries no data: the
// watcher re-reads the order, so a missed or merged wake-up loses nothing.
type broadcaster struct {
	mu       sync.Mutex
	watchers map[string]map[chan struct{}]struct{}
	done     chan struct{}
	closed   bool
}

func newBroadcaster() *broadcaster {
	return &broadcaster{watchers: make(map[string]map[chan struct{}]struct{}), done: make(chan struct{})}
}

// subscribe returns a channel woken when orderID changes, a channel closed at shutdown, and the
// function that unsubscribes.
func (b *broadcaster) subscribe(orderID string) (<-chan struct{}, <-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.mu.Lock()
	defer b.mu.Unlock()
	set := b.watchers[orderID]
	if set == nil {
		set = make(map[chan struct{}]struct{})
		b.watchers[orderID] = set
	}
	set[ch] = struct{}{}
	return ch, b.done, func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(set, ch)
		if len(set) == 0 && b.watchers[orderID] != nil && len(b.watchers[orderID]) == 0 {
			delete(b.watchers, orderID)
		}
	}
}

// publish wakes every watcher of orderID without blocking.
func (b *broadcaster) publish(orderID string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ch := range b.watchers[orderID] {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// wakeAll wakes every watcher without blocking (changes may have been missed).
func (b *broadcaster) wakeAll() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, set := range b.watchers {
		for ch := range set {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// watching returns how many watchers are subscribed (for tests and metrics).
func (b *broadcaster) watching() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, set := range b.watchers {
		n += len(set)
	}
	return n
}

func (b *broadcaster) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		close(b.done)
	}
}

// Watchers returns how many WatchOrder streams are open.
func (s *Service) Watchers() int { return s.changes.watching() }
