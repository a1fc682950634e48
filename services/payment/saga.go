package payment

import (
	"context"
	"errors"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/services/events"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// The simulated processor's payment methods.
const (
	MethodOK       = "pm_card_ok"
	MethodDeclined = "pm_card_declined"
)

// Decline reasons.
const (
	ReasonCardDeclined      = "card declined"
	ReasonUnsupportedMethod = "unsupported payment method"
)

// charge is the simulated, deterministic processor: the status and decline reason of a method.
func charge(method string) (paymentv1.PaymentStatus, string) {
	switch method {
	case MethodOK, "":
		return paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED, ""
	case MethodDeclined:
		return paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED, ReasonCardDeclined
	}
	return paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED, ReasonUnsupportedMethod
}

// HandleOrderCreated charges the order once: PaymentCaptured or PaymentDeclined. An order
// already charged, or cancelled before it arrived (tombstone), changes nothing.
func (s *Service) HandleOrderCreated(ctx context.Context, eventID string, ev *eventsv1.OrderCreated) error {
	if ev.GetOrderId() == "" {
		s.log.WarnContext(ctx, "OrderCreated without order id ignored", "event_id", eventID)
		return nil
	}
	return s.saga.Handle(ctx, eventID, ev.GetOrderId(), func(tx Tx, at time.Time) (events.Outcome, error) {
		if _, err := tx.PaymentOfOrder(ctx, ev.GetOrderId()); !errors.Is(err, ErrNotFound) {
			return nil, err // charged already (or a read error to retry)
		}
		if gone, err := tx.Tombstoned(ctx, ev.GetOrderId()); err != nil || gone {
			return nil, err
		}
		now := timestamppb.New(at)
		st, reason := charge(ev.GetPaymentMethod())
		p := &paymentv1.Payment{
			Id: events.NewID(), OrderId: ev.GetOrderId(), CustomerId: ev.GetCustomerId(),
			AmountCents: ev.GetTotalCents(), Currency: ev.GetCurrency(), Status: st, DeclineReason: reason,
			CreateTime: now, UpdateTime: now,
		}
		if err := tx.Insert(ctx, p); err != nil {
			return nil, err
		}
		if st == paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED {
			return &eventsv1.PaymentCaptured{OrderId: p.OrderId, PaymentId: p.Id, AmountCents: p.AmountCents, Currency: p.Currency}, nil
		}
		return &eventsv1.PaymentDeclined{OrderId: p.OrderId, PaymentId: p.Id, Reason: reason}, nil
	})
}

// HandleOrderCancelled refunds a captured payment of the order (PaymentRefunded). With no
// payment yet it records a tombstone, so that a late OrderCreated charges nothing.
func (s *Service) HandleOrderCancelled(ctx context.Context, eventID string, ev *eventsv1.OrderCancelled) error {
	return s.saga.Handle(ctx, eventID, ev.GetOrderId(), func(tx Tx, now time.Time) (events.Outcome, error) {
		p, err := tx.PaymentOfOrder(ctx, ev.GetOrderId())
		if errors.Is(err, ErrNotFound) {
			return nil, tx.PutTombstone(ctx, ev.GetOrderId(), ev.GetReason())
		}
		if err != nil || p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED {
			return nil, err
		}
		return s.refund(ctx, tx, p, now)
	})
}
