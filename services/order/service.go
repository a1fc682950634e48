package order

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/passport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Consumer is the order service's consumer name in the events inbox and on the broker.
const Consumer = "order"

// Source names the order service in the envelopes it records.
const Source = "order"

// Defaults of Options and the limits of the API.
const (
	DefaultPageSize      = 50
	MaxPageSize          = 100
	IdempotencyTTL       = 24 * time.Hour
	DefaultPollInterval  = time.Second
	DefaultPaymentMethod = "pm_card_ok"
)

var errNotPending = errors.New("order not pending")

// Options configures New. The zero value means the defaults.
type Options struct {
	// Logger receives internal errors and saga decisions. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock (order times, idempotency expiry). Default: time.Now.
	Now func() time.Time
	// OnCommit is called after each commit that appended outbox rows. Default: none; SetNotify
	// can set it later.
	OnCommit func()
	// PollInterval is how often WatchOrder re-reads the order, to see changes made by another
	// instance of the service. Default: 1s.
	PollInterval time.Duration
	// IdempotencyTTL is how long an Idempotency-Key is kept. Default: 24h.
	IdempotencyTTL time.Duration
	// Changes tells the other replicas of the service which order this one changed, and this one
	// which order they changed, so that WatchOrder sees another replica's change at once
	// (pgnotify.Feed, over PostgreSQL LISTEN/NOTIFY). The service does not close it. Default:
	// nil, another replica's change is seen at the next poll.
	Changes Changes
}

// Service implements shop.order.v1.OrderService and the order saga handlers.
type Service struct {
	orderv1.UnimplementedOrderServiceServer

	store     Store
	inventory inventoryv1.InventoryServiceClient
	log       *slog.Logger
	now       func() time.Time
	poll      time.Duration
	ttl       time.Duration
	notify    atomic.Pointer[func()]
	changes   *broadcaster
	remote    Changes
	stopFeed  func()
	closeOnce sync.Once
	saga      events.Saga[Tx]
}

// New returns the order service on store, pricing orders through inventory.
func New(store Store, inventory inventoryv1.InventoryServiceClient, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.IdempotencyTTL <= 0 {
		opts.IdempotencyTTL = IdempotencyTTL
	}
	s := &Service{
		store: store, inventory: inventory, log: opts.Logger, now: opts.Now,
		poll: opts.PollInterval, ttl: opts.IdempotencyTTL, changes: newBroadcaster(),
		remote: opts.Changes, stopFeed: func() {},
	}
	if s.remote != nil {
		s.stopFeed = s.remote.Subscribe(s.changes.publish, s.changes.wakeAll)
	}
	s.saga = events.Saga[Tx]{Source: Source, Update: store.Update, Now: opts.Now, Log: opts.Logger, Committed: s.committed}
	if opts.OnCommit != nil {
		s.SetNotify(opts.OnCommit)
	}
	return s
}

// Register registers the service on srv.
func (s *Service) Register(srv grpc.ServiceRegistrar) { orderv1.RegisterOrderServiceServer(srv, s) }

// SetNotify sets the function called after each commit that appended outbox rows (the relay's
// wake-up), replacing any earlier one. Safe to call while serving.
func (s *Service) SetNotify(fn func()) { s.notify.Store(&fn) }

// Close ends every WatchOrder stream (UNAVAILABLE) and refuses new ones; call it before the
// gRPC server's GracefulStop so that long streams do not hold the shutdown. It unsubscribes from
// Options.Changes but closes neither it nor the store.
func (s *Service) Close() {
	s.closeOnce.Do(func() {
		s.stopFeed()
		s.changes.close()
	})
}

// committed runs after a commit: wakes the relay when events were appended and the watchers of
// the order that changed, here and (Options.Changes) on the other replicas.
func (s *Service) committed(orderID string, appended bool) {
	if appended {
		if fn := s.notify.Load(); fn != nil && *fn != nil {
			(*fn)()
		}
	}
	if orderID != "" {
		s.changes.publish(orderID)
		if s.remote != nil {
			s.remote.Publish(orderID)
		}
	}
}

// visible returns the order id if the caller may see it, else NOT_FOUND.
func (s *Service) visible(ctx context.Context, caller passport.Caller, id string) (*orderv1.Order, error) {
	if err := validateID("id", id); err != nil {
		return nil, err
	}
	o, err := s.store.Get(ctx, id)
	if errors.Is(err, ErrNotFound) || (err == nil && !caller.CanSee(o.GetCustomerId())) {
		return nil, status.Error(codes.NotFound, "order not found")
	}
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "get order", err)
	}
	return o, nil
}

// GetOrder implements OrderServiceServer: the caller's order, any order for an admin.
func (s *Service) GetOrder(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.Order, error) {
	caller, err := passport.Require(ctx)
	if err != nil {
		return nil, err
	}
	return s.visible(ctx, caller, req.GetId())
}

// ListOrders implements OrderServiceServer: the caller's orders (all for an admin), newest
// first.
func (s *Service) ListOrders(ctx context.Context, req *orderv1.ListOrdersRequest) (*orderv1.ListOrdersResponse, error) {
	caller, err := passport.Require(ctx)
	if err != nil {
		return nil, err
	}
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	after, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, grpcserver.InvalidArgument("page_token", "invalid page token")
	}
	customer := caller.Subject
	if caller.IsAdmin() {
		customer = ""
	}
	orders, err := s.store.List(ctx, customer, after, size+1)
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "list orders", err)
	}
	resp := &orderv1.ListOrdersResponse{Orders: orders}
	if len(orders) > size {
		resp.Orders = orders[:size]
		last := orders[size-1]
		resp.NextPageToken = encodePageToken(Cursor{CreateTime: last.GetCreateTime().AsTime().UnixNano(), ID: last.GetId()})
	}
	return resp, nil
}

// CancelOrder implements OrderServiceServer: a pending order of the caller (any for an admin)
// becomes CANCELLED "cancelled by customer" and OrderCancelled is recorded, with the request's
// W3C trace context as CreateOrder reads it (none when the request has none).
func (s *Service) CancelOrder(ctx context.Context, req *orderv1.CancelOrderRequest) (*orderv1.Order, error) {
	caller, err := passport.Require(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	ctx = events.WithIncomingTraceContext(ctx) // the OrderCancelled carries the request's trace
	var out *orderv1.Order
	err = s.store.Update(ctx, func(tx Tx) error {
		r, err := tx.Record(ctx, req.GetId())
		if err != nil {
			return err
		}
		if !caller.CanSee(r.Order.GetCustomerId()) {
			return ErrNotFound
		}
		if r.Order.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
			return errNotPending
		}
		now := s.now()
		ev, err := s.cancel(ctx, tx, r, ReasonCancelledByCustomer, now)
		if err != nil {
			return err
		}
		out = r.Order
		return events.AppendOutcome(ctx, tx, Source, ev, now)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, status.Error(codes.NotFound, "order not found")
	case errors.Is(err, errNotPending):
		return nil, status.Error(codes.FailedPrecondition, "only a pending order can be cancelled")
	case err != nil:
		return nil, grpcserver.Internal(ctx, s.log, "cancel order", err)
	}
	s.committed(out.GetId(), true)
	return out, nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, grpcserver.InvalidArgument("page_size", "must be between 1 and 100")
	}
	return int(n), nil
}
