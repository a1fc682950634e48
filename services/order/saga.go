package order

import (
	"context"
	"errors"
	"time"

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
	return s.saga.Handle(ctx, eventID, ev.GetOrderId(), s.pending(ctx, eventID, ev.GetOrderId(), func(tx Tx, r Record, now time.Time) (events.Outcome, error) {
		r.StockReserved = true
		return s.advance(ctx, tx, r, now)
	}))
}

// HandlePaymentCaptured records the captured payment; with the stock reserved too, the order
// becomes CONFIRMED and OrderConfirmed is recorded.
func (s *Service) HandlePaymentCaptured(ctx context.Context, eventID string, ev *eventsv1.PaymentCaptured) error {
	return s.saga.Handle(ctx, eventID, ev.GetOrderId(), s.pending(ctx, eventID, ev.GetOrderId(), func(tx Tx, r Record, now time.Time) (events.Outcome, error) {
		r.PaymentCaptured = true
		r.Order.PaymentId = ev.GetPaymentId()
		return s.advance(ctx, tx, r, now)
	}))
}

// HandleStockRejected cancels the order with inventory's reason and records OrderCancelled.
func (s *Service) HandleStockRejected(ctx context.Context, eventID string, ev *eventsv1.StockRejected) error {
	return s.saga.Handle(ctx, eventID, ev.GetOrderId(), s.pending(ctx, eventID, ev.GetOrderId(), func(tx Tx, r Record, now time.Time) (events.Outcome, error) {
		reason := ev.GetReason()
		if reason == "" {
			reason = reasonOutOfStock
		}
		return s.cancel(ctx, tx, r, reason, now)
	}))
}

// HandlePaymentDeclined cancels the order ("payment declined: <reason>") and records
// OrderCancelled.
func (s *Service) HandlePaymentDeclined(ctx context.Context, eventID string, ev *eventsv1.PaymentDeclined) error {
	return s.saga.Handle(ctx, eventID, ev.GetOrderId(), s.pending(ctx, eventID, ev.GetOrderId(), func(tx Tx, r Record, now time.Time) (events.Outcome, error) {
		r.Order.PaymentId = ev.GetPaymentId()
		reason := reasonPaymentDeclined
		if ev.GetReason() != "" {
			reason += ": " + ev.GetReason()
		}
		return s.cancel(ctx, tx, r, reason, now)
	}))
}

// pending is the order's saga step: effect runs on the order's record while the order is
// still pending. An unknown order or a final one is logged and changes nothing.
func (s *Service) pending(ctx context.Context, eventID, orderID string, effect func(Tx, Record, time.Time) (events.Outcome, error)) events.Step[Tx] {
	return func(tx Tx, now time.Time) (events.Outcome, error) {
		r, err := tx.Record(ctx, orderID)
		if errors.Is(err, ErrNotFound) {
			s.log.WarnContext(ctx, "event for an unknown order ignored", "event_id", eventID, "order_id", orderID)
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		if r.Order.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
			s.log.InfoContext(ctx, "outcome for a final order ignored", "event_id", eventID, "order_id", orderID,
				"status", r.Order.GetStatus().String())
			return nil, nil
		}
		return effect(tx, r, now)
	}
}

// advance saves the progress at now and, when both halves succeeded, confirms the order and
// returns the OrderConfirmed to record; otherwise nil.
func (s *Service) advance(ctx context.Context, tx Tx, r Record, now time.Time) (events.Outcome, error) {
	confirm := r.StockReserved && r.PaymentCaptured
	if confirm {
		r.Order.Status = orderv1.OrderStatus_ORDER_STATUS_CONFIRMED
	}
	r.Order.UpdateTime = timestamppb.New(now)
	if err := tx.Save(ctx, r); err != nil || !confirm {
		return nil, err
	}
	return &eventsv1.OrderConfirmed{OrderId: r.Order.GetId()}, nil
}

// cancel makes a pending order CANCELLED with reason at now and returns the OrderCancelled to
// record (for an event handled, or the customer's request).
func (s *Service) cancel(ctx context.Context, tx Tx, r Record, reason string, now time.Time) (*eventsv1.OrderCancelled, error) {
	r.Order.Status = orderv1.OrderStatus_ORDER_STATUS_CANCELLED
	r.Order.StatusReason = reason
	r.Order.UpdateTime = timestamppb.New(now)
	if err := tx.Save(ctx, r); err != nil {
		return nil, err
	}
	return &eventsv1.OrderCancelled{OrderId: r.Order.GetId(), Reason: reason}, nil
}
