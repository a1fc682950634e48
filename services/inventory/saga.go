package inventory

import (
	"context"
	"errors"
	"fmt"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/services/events"
)

// HandleOrderCreated reserves the order's units, all or nothing, and records StockReserved;
// when a line cannot be served it records the order rejected and StockRejected with the reason.
// An order seen before (reserved, rejected, or cancelled before it arrived) changes nothing. It
// returns an error only when the event should be redelivered.
func (s *Service) HandleOrderCreated(ctx context.Context, eventID string, ev *eventsv1.OrderCreated) error {
	if ev.GetOrderId() == "" {
		s.log.WarnContext(ctx, "OrderCreated without order id ignored", "event_id", eventID)
		return nil
	}
	lines := mergeLines(ev.GetLines())
	return s.saga.Handle(ctx, eventID, ev.GetOrderId(), func(tx Tx, _ time.Time) (events.Outcome, error) {
		if _, err := tx.Reservation(ctx, ev.GetOrderId()); !errors.Is(err, ErrNotFound) {
			return nil, err // known already (or a read error to retry)
		}
		if reason, err := s.shortage(ctx, tx, lines); err != nil || reason != "" {
			if err != nil {
				return nil, err
			}
			r := Reservation{OrderID: ev.GetOrderId(), State: StateRejected, Reason: reason}
			if err := tx.PutReservation(ctx, r); err != nil {
				return nil, err
			}
			return &eventsv1.StockRejected{OrderId: ev.GetOrderId(), Reason: reason}, nil
		}
		for _, l := range lines {
			if err := tx.Move(ctx, l.SKU, -l.Quantity, l.Quantity); err != nil {
				return nil, fmt.Errorf("reserving %s: %w", l.SKU, err)
			}
		}
		r := Reservation{OrderID: ev.GetOrderId(), State: StateReserved, Lines: lines}
		if err := tx.PutReservation(ctx, r); err != nil {
			return nil, err
		}
		return &eventsv1.StockReserved{OrderId: ev.GetOrderId()}, nil
	})
}

// HandleOrderConfirmed takes a held reservation out of stock for good (reserved -= q). Anything
// but a held reservation changes nothing.
func (s *Service) HandleOrderConfirmed(ctx context.Context, eventID string, ev *eventsv1.OrderConfirmed) error {
	return s.saga.Handle(ctx, eventID, ev.GetOrderId(), func(tx Tx, _ time.Time) (events.Outcome, error) {
		r, err := tx.Reservation(ctx, ev.GetOrderId())
		if errors.Is(err, ErrNotFound) {
			s.log.WarnContext(ctx, "OrderConfirmed without a reservation", "order_id", ev.GetOrderId())
			return nil, nil
		}
		if err != nil || r.State != StateReserved {
			return nil, err
		}
		for _, l := range r.Lines {
			if err := tx.Move(ctx, l.SKU, 0, -l.Quantity); err != nil {
				return nil, fmt.Errorf("committing %s: %w", l.SKU, err)
			}
		}
		return nil, tx.PutReservation(ctx, Reservation{OrderID: r.OrderID, State: StateCommitted})
	})
}

// HandleOrderCancelled releases a held reservation (available += q, reserved -= q) and records
// StockReleased. With no reservation yet it records a tombstone, so that a late OrderCreated
// reserves nothing. Anything else changes nothing.
func (s *Service) HandleOrderCancelled(ctx context.Context, eventID string, ev *eventsv1.OrderCancelled) error {
	return s.saga.Handle(ctx, eventID, ev.GetOrderId(), func(tx Tx, _ time.Time) (events.Outcome, error) {
		r, err := tx.Reservation(ctx, ev.GetOrderId())
		if errors.Is(err, ErrNotFound) {
			return nil, tx.PutReservation(ctx, Reservation{OrderID: ev.GetOrderId(), State: StateTombstone, Reason: ev.GetReason()})
		}
		if err != nil || r.State != StateReserved {
			return nil, err
		}
		for _, l := range r.Lines {
			if err := tx.Move(ctx, l.SKU, l.Quantity, -l.Quantity); err != nil {
				return nil, fmt.Errorf("releasing %s: %w", l.SKU, err)
			}
		}
		if err := tx.PutReservation(ctx, Reservation{OrderID: r.OrderID, State: StateReleased, Reason: ev.GetReason()}); err != nil {
			return nil, err
		}
		return &eventsv1.StockReleased{OrderId: r.OrderID}, nil
	})
}

// shortage returns why lines cannot be reserved ("out of stock: sku X", "unknown item: sku X"),
// or "" when every line can.
func (s *Service) shortage(ctx context.Context, tx Tx, lines []Line) (string, error) {
	for _, l := range lines {
		it, err := tx.Item(ctx, l.SKU)
		if errors.Is(err, ErrNotFound) {
			return "unknown item: sku " + l.SKU, nil
		}
		if err != nil {
			return "", err
		}
		if it.GetAvailable() < l.Quantity {
			return "out of stock: sku " + l.SKU, nil
		}
	}
	return "", nil
}

// mergeLines sums the quantities of repeated SKUs and drops non-positive quantities.
func mergeLines(in []*eventsv1.Line) []Line {
	out := make([]Line, 0, len(in))
	idx := make(map[string]int, len(in))
	for _, l := range in {
		if l.GetQuantity() <= 0 {
			continue
		}
		if i, ok := idx[l.GetSku()]; ok {
			out[i].Quantity += l.GetQuantity()
			continue
		}
		idx[l.GetSku()] = len(out)
		out = append(out, Line{SKU: l.GetSku(), Quantity: l.GetQuantity()})
	}
	return out
}
