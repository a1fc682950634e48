package payment

import (
	"context"
	"errors"
	"fmt"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/services/events"
	"google.golang.org/protobuf/proto"
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
	return s.handle(ctx, eventID, func(tx Tx) (proto.Message, error) {
		if _, err := tx.PaymentOfOrder(ctx, ev.GetOrderId()); !errors.Is(err, ErrNotFound) {
			return nil, err // charged already (or a read error to retry)
		}
		if gone, err := tx.Tombstoned(ctx, ev.GetOrderId()); err != nil || gone {
			return nil, err
		}
		now := timestamppb.New(s.now())
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
	return s.handle(ctx, eventID, func(tx Tx) (proto.Message, error) {
		p, err := tx.PaymentOfOrder(ctx, ev.GetOrderId())
		if errors.Is(err, ErrNotFound) {
			return nil, tx.PutTombstone(ctx, ev.GetOrderId(), ev.GetReason())
		}
		if err != nil || p.GetStatus() != paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED {
			return nil, err
		}
		return nil, s.refund(ctx, tx, p)
	})
}

// handle runs one saga step in one transaction: the inbox row, effect, and the outcome event
// effect returns (nil for none; refund appends its own), with the handled event's trace context
// (events.TraceContextFrom(ctx)). A duplicate event commits nothing.
func (s *Service) handle(ctx context.Context, eventID string, effect func(Tx) (proto.Message, error)) error {
	appended := false
	err := s.store.Update(ctx, func(tx Tx) error {
		appended = false
		first, err := tx.MarkProcessed(ctx, eventID)
		if err != nil || !first {
			return err
		}
		counter := &countingTx{Tx: tx}
		out, err := effect(counter)
		if err != nil {
			return err
		}
		if out != nil {
			orderID := out.(interface{ GetOrderId() string }).GetOrderId()
			env, err := events.NewEnvelope(Source, orderID, out, s.now(), events.TraceContextFrom(ctx))
			if err != nil {
				return err
			}
			if err := counter.Append(ctx, env); err != nil {
				return err
			}
		}
		appended = counter.appended
		return nil
	})
	if err != nil {
		s.log.ErrorContext(ctx, "handling event", "event_id", eventID, "err", err)
		return fmt.Errorf("handling event %s: %w", eventID, err)
	}
	if appended {
		s.committed()
	}
	return nil
}

// countingTx remembers whether an event was appended, to wake the relay after the commit.
type countingTx struct {
	Tx
	appended bool
}

func (c *countingTx) Append(ctx context.Context, env *eventsv1.Envelope) error {
	if err := c.Tx.Append(ctx, env); err != nil {
		return err
	}
	c.appended = true
	return nil
}
