package payment

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/passport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Consumer is the payment service's consumer name in the events inbox and on the broker.
const Consumer = "payment"

// Source names the payment service in the envelopes it records.
const Source = "payment"

// Options configures New. The zero value means the defaults.
type Options struct {
	// Logger receives internal errors and saga decisions. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// OnCommit is called after each commit that appended outbox rows. Default: none; SetNotify
	// can set it later.
	OnCommit func()
}

// Service implements shop.payment.v1.PaymentService and the payment saga handlers.
type Service struct {
	paymentv1.UnimplementedPaymentServiceServer

	store  Store
	log    *slog.Logger
	now    func() time.Time
	notify atomic.Pointer[func()]
	saga   events.Saga[Tx]
}

// New returns the payment service on store.
func New(store Store, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{store: store, log: opts.Logger, now: opts.Now}
	s.saga = events.Saga[Tx]{Source: Source, Update: store.Update, Now: opts.Now, Log: opts.Logger, Committed: s.committed}
	if opts.OnCommit != nil {
		s.SetNotify(opts.OnCommit)
	}
	return s
}

// Register registers the service on srv.
func (s *Service) Register(srv grpc.ServiceRegistrar) { paymentv1.RegisterPaymentServiceServer(srv, s) }

// SetNotify sets the function called after each commit that appended outbox rows (the relay's
// wake-up), replacing any earlier one. Safe to call while serving.
func (s *Service) SetNotify(fn func()) { s.notify.Store(&fn) }

// committed runs after a commit (it is also the saga's Committed): it wakes the relay when
// events were appended.
func (s *Service) committed(_ string, appended bool) {
	if !appended {
		return
	}
	if fn := s.notify.Load(); fn != nil && *fn != nil {
		(*fn)()
	}
}

// GetPayment implements PaymentServiceServer: a payment of the caller, any for an admin.
func (s *Service) GetPayment(ctx context.Context, req *paymentv1.GetPaymentRequest) (*paymentv1.Payment, error) {
	caller, err := passport.Require(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	p, err := s.store.Get(ctx, req.GetId())
	if errors.Is(err, ErrNotFound) || (err == nil && !caller.CanSee(p.GetCustomerId())) {
		return nil, status.Error(codes.NotFound, "payment not found")
	}
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "get payment", err)
	}
	return p, nil
}

// ListPayments implements PaymentServiceServer: the payments of one order of the caller (of
// any order for an admin), oldest first. Another customer's order lists nothing.
func (s *Service) ListPayments(ctx context.Context, req *paymentv1.ListPaymentsRequest) (*paymentv1.ListPaymentsResponse, error) {
	caller, err := passport.Require(ctx)
	if err != nil {
		return nil, err
	}
	if err := validateID("order_id", req.GetOrderId()); err != nil {
		return nil, err
	}
	all, err := s.store.ListByOrder(ctx, req.GetOrderId())
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "list payments", err)
	}
	resp := &paymentv1.ListPaymentsResponse{Payments: all[:0]}
	for _, p := range all {
		if caller.CanSee(p.GetCustomerId()) {
			resp.Payments = append(resp.Payments, p)
		}
	}
	return resp, nil
}

var errDeclined = errors.New("declined")

// RefundPayment implements PaymentServiceServer. Admins only: a captured payment becomes
// REFUNDED and PaymentRefunded is recorded in the same transaction; a refunded one is returned
// unchanged; a declined one is FAILED_PRECONDITION.
func (s *Service) RefundPayment(ctx context.Context, req *paymentv1.RefundPaymentRequest) (*paymentv1.Payment, error) {
	if _, err := passport.RequireRole(ctx, passport.RoleAdmin); err != nil {
		return nil, err
	}
	if err := validateID("id", req.GetId()); err != nil {
		return nil, err
	}
	ctx = events.WithIncomingTraceContext(ctx) // PaymentRefunded carries the admin's request's trace
	var out *paymentv1.Payment
	appended := false
	err := s.store.Update(ctx, func(tx Tx) error {
		appended = false
		p, err := tx.Payment(ctx, req.GetId())
		if err != nil {
			return err
		}
		out = p
		switch p.GetStatus() {
		case paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED:
			return errDeclined
		case paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED:
			return nil
		}
		now := s.now()
		ev, err := s.refund(ctx, tx, p, now)
		if err != nil {
			return err
		}
		appended = true
		return events.AppendOutcome(ctx, tx, Source, ev, now)
	})
	switch {
	case errors.Is(err, ErrNotFound):
		return nil, status.Error(codes.NotFound, "payment not found")
	case errors.Is(err, errDeclined):
		return nil, status.Error(codes.FailedPrecondition, "a declined payment cannot be refunded")
	case err != nil:
		return nil, grpcserver.Internal(ctx, s.log, "refund payment", err)
	}
	s.committed(out.GetOrderId(), appended)
	return out, nil
}

// refund makes a captured payment REFUNDED at now and returns the PaymentRefunded to record
// (for an OrderCancelled handled, or an admin's request).
func (s *Service) refund(ctx context.Context, tx Tx, p *paymentv1.Payment, now time.Time) (*eventsv1.PaymentRefunded, error) {
	p.Status = paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED
	p.UpdateTime = timestamppb.New(now)
	if err := tx.SetStatus(ctx, p); err != nil {
		return nil, err
	}
	return &eventsv1.PaymentRefunded{OrderId: p.GetOrderId(), PaymentId: p.GetId()}, nil
}

// validateID checks an id field: 1 to 64 characters of a-z, A-Z, 0-9, '-', '_'.
func validateID(field, id string) error {
	if id == "" {
		return grpcserver.InvalidArgument(field, "required")
	}
	if len(id) > 64 {
		return grpcserver.InvalidArgument(field, "malformed id")
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return grpcserver.InvalidArgument(field, "malformed id")
		}
	}
	return nil
}
