package order

import (
	"context"
	"errors"
	"fmt"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/events"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Status reasons the order service writes.
const (
	ReasonCancelledByCustomer = "cancelled by customer"
	reasonOutOfStock          = "out of stock"
	reasonPaymentDeclined     = "payment declined"
)

// HandleStockReserved records that inventory holds the order's units; with the payment
// captured too, the order becomes CONFIRMED and OrderConfirmed is recorded.
func (s *Service) HandleStockReserved(ctx context.Context, eventID string, ev *eventsv1.StockReserved) error {
	return s.handle(ctx, eventID, ev.GetOrderId(), func(tx Tx, r Record) (bool, error) {
		r.StockReserved = true
		return s.advance(ctx, tx, r)
	})
}

// HandlePaymentCaptured records the captured payment; with the stock reserved too, the order
// becomes CONFIRMED and OrderConfirmed is recorded.
func (s *Service) HandlePaymentCaptured(ctx context.Context, eventID string, ev *eventsv1.PaymentCaptured) error {
	return s.handle(ctx, eventID, ev.GetOrderId(), func(tx Tx, r Record) (bool, error) {
		r.PaymentCaptured = true
		r.Order.PaymentId = ev.GetPaymentId()
		return s.advance(ctx, tx, r)
	})
}

// HandleStockRejected cancels the order with inventory's reason and records OrderCancelled.
func (s *Service) HandleStockRejected(ctx context.Context, eventID string, ev *eventsv1.StockRejected) error {
	return s.handle(ctx, eventID, ev.GetOrderId(), func(tx Tx, r Record) (bool, error) {
		reason := ev.GetReason()
		if reason == "" {
			reason = reasonOutOfStock
		}
		return true, s.cancel(ctx, tx, r, reason)
	})
}

// HandlePaymentDeclined cancels the order ("payment declined: <reason>") and records
// OrderCancelled.
func (s *Service) HandlePaymentDeclined(ctx context.Context, eventID string, ev *eventsv1.PaymentDeclined) error {
	return s.handle(ctx, eventID, ev.GetOrderId(), func(tx Tx, r Record) (bool, error) {
		r.Order.PaymentId = ev.GetPaymentId()
		reason := reasonPaymentDeclined
		if ev.GetReason() != "" {
			reason += ": " + ev.GetReason()
		}
		return true, s.cancel(ctx, tx, r, reason)
	})
}

// advance saves the progress and confirms the order when both halves succeeded, recording
// OrderConfirmed with ctx's trace context (events.TraceContextFrom). It reports whether an event
// was appended.
func (s *Service) advance(ctx context.Context, tx Tx, r Record) (bool, error) {
	confirm := r.StockReserved && r.PaymentCaptured
	now := s.now()
	if confirm {
		r.Order.Status = orderv1.OrderStatus_ORDER_STATUS_CONFIRMED
	}
	r.Order.UpdateTime = timestamppb.New(now)
	if err := tx.Save(ctx, r); err != nil || !confirm {
		return false, err
	}
	env, err := events.NewEnvelope(Source, r.Order.GetId(), &eventsv1.OrderConfirmed{OrderId: r.Order.GetId()}, now, events.TraceContextFrom(ctx))
	if err != nil {
		return false, err
	}
	return true, tx.Append(ctx, env)
}

// cancel makes a pending order CANCELLED with reason and records OrderCancelled with ctx's trace
// context (events.TraceContextFrom): that of the event handled, or of the customer's request.
func (s *Service) cancel(ctx context.Context, tx Tx, r Record, reason string) error {
	now := s.now()
	r.Order.Status = orderv1.OrderStatus_ORDER_STATUS_CANCELLED
	r.Order.StatusReason = reason
	r.Order.UpdateTime = timestamppb.New(now)
	if err := tx.Save(ctx, r); err != nil {
		return err
	}
	env, err := events.NewEnvelope(Source, r.Order.GetId(), &eventsv1.OrderCancelled{OrderId: r.Order.GetId(), Reason: reason}, now, events.TraceContextFrom(ctx))
	if err != nil {
		return err
	}
	return tx.Append(ctx, env)
}

// handle runs one saga step in one transaction: the inbox row, then effect on the order if it
// is still pending. A duplicate event, an unknown order or a final one commits nothing else.
func (s *Service) handle(ctx context.Context, eventID, orderID string, effect func(Tx, Record) (appended bool, err error)) error {
	appended := false
	err := s.store.Update(ctx, func(tx Tx) error {
		appended = false
		first, err := tx.MarkProcessed(ctx, eventID)
		if err != nil || !first {
			return err
		}
		r, err := tx.Record(ctx, orderID)
		if errors.Is(err, ErrNotFound) {
			s.log.WarnContext(ctx, "event for an unknown order ignored", "event_id", eventID, "order_id", orderID)
			return nil
		}
		if err != nil {
			return err
		}
		if r.Order.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
			s.log.InfoContext(ctx, "outcome for a final order ignored", "event_id", eventID, "order_id", orderID,
				"status", r.Order.GetStatus().String())
			return nil
		}
		appended, err = effect(tx, r)
		return err
	})
	if err != nil {
		s.log.ErrorContext(ctx, "handling event", "event_id", eventID, "err", err)
		return fmt.Errorf("handling event %s: %w", eventID, err)
	}
	s.committed(orderID, appended)
	return nil
}
