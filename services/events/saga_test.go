package events_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"strings"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/services/events"
)

// stepTx is an in-memory transaction: its inbox and the envelopes appended to it.
type stepTx struct {
	inbox    map[string]bool
	appended []*eventsv1.Envelope
	markErr  error
}

func (tx *stepTx) MarkProcessed(_ context.Context, eventID string) (bool, error) {
	if tx.markErr != nil {
		return false, tx.markErr
	}
	if tx.inbox[eventID] {
		return false, nil
	}
	tx.inbox[eventID] = true
	return true, nil
}

func (tx *stepTx) Append(_ context.Context, env *eventsv1.Envelope) error {
	tx.appended = append(tx.appended, env)
	return nil
}

func TestSagaHandle(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	errStep := errors.New("disk on fire")
	reserved := func(*stepTx, time.Time) (events.Outcome, error) {
		return &eventsv1.StockReserved{OrderId: "o1"}, nil
	}
	tests := []struct {
		name         string
		seen         bool // the event is in the inbox already
		markErr      error
		step         events.Step[*stepTx]
		wantErr      error
		wantRan      bool
		wantEvent    string // type of the appended envelope, "" for none
		wantCommit   string // "<order id>:<appended>", "" for no call
		wantLogLines int
	}{
		{name: "outcome recorded", step: reserved, wantRan: true, wantEvent: "shop.events.v1.StockReserved", wantCommit: "o1:true"},
		{name: "no outcome", step: func(*stepTx, time.Time) (events.Outcome, error) { return nil, nil }, wantRan: true, wantCommit: "o1:false"},
		{name: "duplicate runs nothing", seen: true, step: reserved, wantCommit: "o1:false"},
		{name: "step failure is returned and logged", step: func(*stepTx, time.Time) (events.Outcome, error) { return nil, errStep }, wantErr: errStep, wantRan: true, wantLogLines: 1},
		{name: "inbox failure is returned and logged", markErr: errStep, step: reserved, wantErr: errStep, wantLogLines: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tx := &stepTx{inbox: map[string]bool{"e1": tc.seen}, markErr: tc.markErr}
			var logs bytes.Buffer
			commit, ran := "", false
			saga := events.Saga[*stepTx]{
				Source: "inventory",
				Update: func(_ context.Context, fn func(*stepTx) error) error { return fn(tx) },
				Now:    func() time.Time { return at },
				Log:    slog.New(slog.NewTextHandler(&logs, nil)),
				Committed: func(orderID string, appended bool) {
					commit = fmt.Sprintf("%s:%t", orderID, appended)
				},
			}
			trace := map[string]string{"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
			ctx := events.WithTraceContext(context.Background(), trace)
			err := saga.Handle(ctx, "e1", "o1", func(tx *stepTx, now time.Time) (events.Outcome, error) {
				ran = true
				if !now.Equal(at) {
					t.Errorf("step at %v, want %v", now, at)
				}
				return tc.step(tx, now)
			})
			if !errors.Is(err, tc.wantErr) || (err != nil && !strings.HasPrefix(err.Error(), "handling event e1: ")) {
				t.Fatalf("Handle = %v, want %v wrapped as handling event e1", err, tc.wantErr)
			}
			if ran != tc.wantRan || commit != tc.wantCommit {
				t.Fatalf("step ran %v, committed %q; want %v, %q", ran, commit, tc.wantRan, tc.wantCommit)
			}
			if n := strings.Count(logs.String(), "handling event"); n != tc.wantLogLines {
				t.Fatalf("%d error lines, want %d: %s", n, tc.wantLogLines, logs.String())
			}
			if tc.wantEvent == "" {
				if len(tx.appended) != 0 {
					t.Fatalf("appended %v, want nothing", tx.appended)
				}
				return
			}
			if len(tx.appended) != 1 {
				t.Fatalf("appended %d envelopes, want 1", len(tx.appended))
			}
			env := tx.appended[0]
			if env.GetType() != tc.wantEvent || env.GetSource() != "inventory" || env.GetOrderId() != "o1" ||
				!env.GetTime().AsTime().Equal(at) || !maps.Equal(env.GetTraceContext(), trace) || env.GetEventId() == "" {
				t.Fatalf("envelope %v", env)
			}
		})
	}
}
