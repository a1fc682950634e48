package events_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
)

const orderCreated = "shop.events.v1.OrderCreated"

// fastRetries makes redeliveries quick enough for a test.
var fastRetries = events.Config{BackOff: []time.Duration{5 * time.Millisecond}}

// publishEnvelope publishes env as the relay would, with msgID as its deduplication id.
func publishEnvelope(t *testing.T, b events.Broker, env *eventsv1.Envelope, msgID string) {
	t.Helper()
	data, err := proto.Marshal(env)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctxTimeout(t, 5*time.Second), events.Message{Type: env.GetType(), ID: msgID, Data: data}); err != nil {
		t.Fatal(err)
	}
}

func newOrderCreated(t *testing.T, orderID string) *eventsv1.Envelope {
	t.Helper()
	env, err := events.NewEnvelope("order", orderID, &eventsv1.OrderCreated{OrderId: orderID}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// consumerInfo returns the durable consumer's state on the broker.
func consumerInfo(t *testing.T, b *events.JetStream, name string) *jetstream.ConsumerInfo {
	t.Helper()
	ctx := ctxTimeout(t, 5*time.Second)
	c, err := b.JetStream().Consumer(ctx, b.Stream(), name)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestConsumerAcksOnlyAfterTheHandlerSucceeds(t *testing.T) {
	for _, bc := range brokers() {
		t.Run(bc.name, func(t *testing.T) {
			b := bc.open(t, fastRetries)
			const failures = 2
			var calls atomic.Int32
			var attempts []int
			var mu sync.Mutex
			sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "inventory", []string{orderCreated},
				func(_ context.Context, m events.Message) error {
					mu.Lock()
					attempts = append(attempts, m.Attempt)
					mu.Unlock()
					if calls.Add(1) <= failures {
						return errors.New("database busy")
					}
					return nil
				})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Stop()
			env := newOrderCreated(t, "o1")
			publishEnvelope(t, b, env, env.GetEventId())
			eventually(t, 10*time.Second, "the message was not acknowledged", func() bool {
				info := consumerInfo(t, b, "inventory")
				return info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == 1
			})
			sub.Stop()
			mu.Lock()
			defer mu.Unlock()
			if fmt.Sprint(attempts) != "[1 2 3]" {
				t.Fatalf("deliveries with attempts %v, want [1 2 3]: redelivered until the handler succeeded, then acked", attempts)
			}
		})
	}
}

func TestConsumerDeadLettersAfterMaxAttempts(t *testing.T) {
	tests := []struct {
		name         string
		maxAttempts  int
		err          error
		wantAttempts int
	}{
		{"transient error, default attempts", 0, errors.New("still failing"), 5},
		{"transient error, 2 attempts", 2, errors.New("still failing"), 2},
		{"permanent error goes at once", 5, fmt.Errorf("undecodable: %w", events.ErrPermanent), 1},
	}
	for _, bc := range brokers() {
		for _, tt := range tests {
			t.Run(bc.name+"/"+tt.name, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				cfg := fastRetries
				cfg.MaxAttempts = tt.maxAttempts
				cfg.Registerer = reg
				b := bc.open(t, cfg)
				var calls atomic.Int32
				sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "payment", []string{orderCreated},
					func(context.Context, events.Message) error { calls.Add(1); return tt.err })
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Stop()
				env := newOrderCreated(t, "o-dlq")
				publishEnvelope(t, b, env, env.GetEventId())

				dlSubject := b.DeadLetterSubject("payment", orderCreated)
				eventually(t, 10*time.Second, "nothing reached the dead-letter subject", func() bool {
					return len(streamEventIDs(t, b, dlSubject)) == 1
				})
				if got := streamEventIDs(t, b, dlSubject); got[0] != env.GetEventId() {
					t.Fatalf("dead letter holds event %s, want %s", got[0], env.GetEventId())
				}
				eventually(t, 5*time.Second, "dead-letter metric not incremented", func() bool {
					return metricSum(t, reg, "events_dead_letter_total") == 1
				})
				eventually(t, 5*time.Second, "the given-up message is still pending", func() bool {
					info := consumerInfo(t, b, "payment")
					return info.NumAckPending == 0 && info.NumPending == 0
				})
				sub.Stop()
				if got := int(calls.Load()); got != tt.wantAttempts {
					t.Fatalf("handler called %d times, want %d", got, tt.wantAttempts)
				}
				m := lastMessage(t, b, dlSubject)
				if m.Header.Get(events.HeaderDeadLetterAttempts) != strconv.Itoa(tt.wantAttempts) ||
					m.Header.Get(events.HeaderDeadLetterConsumer) != "payment" ||
					m.Header.Get(events.HeaderDeadLetterError) != tt.err.Error() {
					t.Fatalf("dead-letter headers %v", m.Header)
				}
			})
		}
	}
}

func lastMessage(t *testing.T, b *events.JetStream, subject string) *jetstream.RawStreamMsg {
	t.Helper()
	ctx := ctxTimeout(t, 5*time.Second)
	s, err := b.JetStream().Stream(ctx, b.Stream())
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// applyOnce is a service handler: the inbox row and the effect in one transaction.
func applyOnce(db *sql.DB, consumer string) events.Handler {
	return events.Consumer{Name: consumer, Routes: []events.Route{
		events.On(func(ctx context.Context, eventID string, ev *eventsv1.OrderCreated) error {
			tx, err := db.BeginTx(ctx, nil)
			if err != nil {
				return err
			}
			defer func() { _ = tx.Rollback() }()
			first, err := events.MarkProcessed(ctx, tx, consumer, eventID)
			if err != nil || !first {
				return err
			}
			if _, err := tx.ExecContext(ctx, `INSERT INTO effects (order_id, n) VALUES (?, 1)
				ON CONFLICT (order_id) DO UPDATE SET n = n + 1`, ev.GetOrderId()); err != nil {
				return err
			}
			return tx.Commit()
		}),
	}}.Handler()
}

func effectCount(t *testing.T, db *sql.DB, orderID string) int {
	t.Helper()
	var n int
	err := db.QueryRow(`SELECT n FROM effects WHERE order_id = ?`, orderID).Scan(&n)
	if errors.Is(err, sql.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRedeliveredEventTakesEffectOnce(t *testing.T) {
	for _, bc := range brokers() {
		t.Run(bc.name, func(t *testing.T) {
			b := bc.open(t, fastRetries)
			db := openDB(t)
			var deliveries atomic.Int32
			h := applyOnce(db, "inventory")
			sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "inventory", []string{orderCreated},
				func(ctx context.Context, m events.Message) error { deliveries.Add(1); return h(ctx, m) })
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Stop()
			env := newOrderCreated(t, "o-twice")
			// The same event under three message ids: the broker cannot deduplicate it, the inbox must.
			for _, id := range []string{env.GetEventId(), env.GetEventId() + "#2", env.GetEventId() + "#3"} {
				publishEnvelope(t, b, env, id)
			}
			eventually(t, 10*time.Second, "not every copy was delivered", func() bool { return deliveries.Load() == 3 })
			eventually(t, 5*time.Second, "copies still pending", func() bool {
				return consumerInfo(t, b, "inventory").NumAckPending == 0
			})
			if got := effectCount(t, db, "o-twice"); got != 1 {
				t.Fatalf("effect applied %d times, want 1", got)
			}
		})
	}
}

func TestInstancesOfOneServiceShareTheWork(t *testing.T) {
	b := brokers()[0].open(t, events.Config{})
	db := openDB(t)
	const n = 40
	var perInstance [2]atomic.Int32
	for i := range perInstance {
		h := applyOnce(db, "order")
		sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "order", []string{orderCreated},
			func(ctx context.Context, m events.Message) error { perInstance[i].Add(1); return h(ctx, m) })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
	}
	for i := range n {
		env := newOrderCreated(t, "o"+strconv.Itoa(i))
		publishEnvelope(t, b, env, env.GetEventId())
	}
	eventually(t, 10*time.Second, "not every event was handled", func() bool {
		return perInstance[0].Load()+perInstance[1].Load() >= n && consumerInfo(t, b, "order").NumAckPending == 0
	})
	var total int
	if err := db.QueryRow(`SELECT COUNT(*) FROM effects WHERE n = 1`).Scan(&total); err != nil {
		t.Fatal(err)
	}
	if total != n {
		t.Fatalf("%d orders handled once, want %d", total, n)
	}
	if got := perInstance[0].Load() + perInstance[1].Load(); got != n {
		t.Fatalf("%d deliveries across instances, want each message once: %d", got, n)
	}
}

func TestSubscribeRejectsBadArguments(t *testing.T) {
	b := brokers()[0].open(t, events.Config{})
	ok := func(context.Context, events.Message) error { return nil }
	tests := []struct {
		name     string
		consumer string
		types    []string
		h        events.Handler
	}{
		{"empty consumer", "", []string{orderCreated}, ok},
		{"dotted consumer", "a.b", []string{orderCreated}, ok},
		{"no types", "inventory", nil, ok},
		{"nil handler", "inventory", []string{orderCreated}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if sub, err := b.Subscribe(context.Background(), tt.consumer, tt.types, tt.h); err == nil {
				sub.Stop()
				t.Fatal("Subscribe accepted it")
			}
		})
	}
}
