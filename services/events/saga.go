package events

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"google.golang.org/protobuf/proto"
)

// Outcome is the payload of an event a service records. Every event of the order flow names
// its order, which becomes the envelope's order id.
type Outcome interface {
	proto.Message
	GetOrderId() string
}

// Appender is what AppendOutcome needs of a transaction: every service's Tx has it.
type Appender interface {
	// Append records an event in the outbox.
	Append(ctx context.Context, env *eventsv1.Envelope) error
}

// StepTx is what Saga needs of a service's write transaction: every service's Tx has it.
type StepTx interface {
	Appender
	// MarkProcessed records that the service's consumer handled eventID; false if it had.
	MarkProcessed(ctx context.Context, eventID string) (bool, error)
}

// Step is the effect of one event on a service, inside the transaction tx, at now: it returns
// the outcome event to record, nil for none.
type Step[T StepTx] func(tx T, now time.Time) (Outcome, error)

// Saga runs the handlers of one service's events, the same way in every service. Every field
// is required; there are no defaults.
type Saga[T StepTx] struct {
	// Source names the service in the envelopes it records ("inventory").
	Source string
	// Update runs fn in one write transaction of the service's store, committed when fn
	// returns nil (the Store's Update).
	Update func(ctx context.Context, fn func(T) error) error
	// Now is the service's clock, read once per event that was not handled before.
	Now func() time.Time
	// Log receives the failures of handlers.
	Log *slog.Logger
	// Committed runs after each commit, a duplicate event's too, with the order id Handle was
	// given and whether an event was appended (to wake the relay).
	Committed func(orderID string, appended bool)
}

// Handle runs step for the event eventID about orderID in one transaction: the inbox row (a
// duplicate event commits nothing else), step, and the outcome step returns, appended to the
// outbox with ctx's trace context (TraceContextFrom: that of the event handled). A failure is
// logged and returned, so that the broker redelivers the event.
func (s *Saga[T]) Handle(ctx context.Context, eventID, orderID string, step Step[T]) error {
	appended := false
	err := s.Update(ctx, func(tx T) error {
		appended = false
		first, err := tx.MarkProcessed(ctx, eventID)
		if err != nil || !first {
			return err
		}
		now := s.Now()
		out, err := step(tx, now)
		if err != nil || out == nil {
			return err
		}
		if err := AppendOutcome(ctx, tx, s.Source, out, now); err != nil {
			return err
		}
		appended = true
		return nil
	})
	if err != nil {
		s.Log.ErrorContext(ctx, "handling event", "event_id", eventID, "err", err)
		return fmt.Errorf("handling event %s: %w", eventID, err)
	}
	s.Committed(orderID, appended)
	return nil
}

// AppendOutcome appends out to the outbox in tx: an envelope from source, at at, for out's
// order, with ctx's trace context (TraceContextFrom: that of the event handled, or of the
// request).
func AppendOutcome(ctx context.Context, tx Appender, source string, out Outcome, at time.Time) error {
	env, err := NewEnvelope(source, out.GetOrderId(), out, at, TraceContextFrom(ctx))
	if err != nil {
		return err
	}
	return tx.Append(ctx, env)
}
