package events_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// The consumer's log messages (services/events/jetstream.go, jsSubscription.handle).
const (
	logDeadLettered = "event moved to dead-letter subject"
	logRetrying     = "event handler failed; will redeliver"
)

// deadLetterLines are the lines of logs about dead-lettering (moved, or failing to move).
func deadLetterLines(logs []logRecord) []logRecord {
	var out []logRecord
	for _, r := range logs {
		if msg := strings.ToLower(r.str("msg")); strings.Contains(msg, "dead-letter") || strings.Contains(msg, "dead letter") {
			out = append(out, r)
		}
	}
	return out
}

func linesWithMsg(logs []logRecord, msg string) []logRecord {
	var out []logRecord
	for _, r := range logs {
		if r.str("msg") == msg {
			out = append(out, r)
		}
	}
	return out
}

func TestConsumerDeadLettersAfterMaxAttempts(t *testing.T) {
	tests := []struct {
		name        string
		maxAttempts int
		err         error
		// succeedAt is the attempt at which the handler stops failing; 0: never.
		succeedAt    int
		wantAttempts int
	}{
		{"transient error, default attempts", 0, errors.New("still failing"), 0, 5},
		{"transient error, 2 attempts", 2, errors.New("still failing"), 0, 2},
		{"permanent error goes at once", 5, fmt.Errorf("undecodable: %w", events.ErrPermanent), 0, 1},
		{"succeeds on the second of 5 attempts", 0, errors.New("busy"), 2, 2},
		{"succeeds on the last allowed attempt", 3, errors.New("busy"), 3, 3},
	}
	for _, bc := range brokers() {
		for _, tt := range tests {
			t.Run(bc.name+"/"+tt.name, func(t *testing.T) {
				reg := prometheus.NewRegistry()
				logger, logs := captureLogs(t)
				cfg := fastRetries
				cfg.MaxAttempts = tt.maxAttempts
				cfg.Registerer = reg
				cfg.Logger = logger
				b := bc.open(t, cfg)
				var calls atomic.Int32
				sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "payment", []string{orderCreated},
					func(_ context.Context, m events.Message) error {
						calls.Add(1)
						if tt.succeedAt > 0 && m.Attempt >= tt.succeedAt {
							return nil
						}
						return tt.err
					})
				if err != nil {
					t.Fatal(err)
				}
				defer sub.Stop()
				env := newOrderCreated(t, "o-dlq")
				publishEnvelope(t, b, env, env.GetEventId())
				dlSubject := b.DeadLetterSubject("payment", orderCreated)
				consumed := func(result string) float64 {
					return counterValue(t, reg, "events_consumer_messages_total", map[string]string{"consumer": "payment", "result": result})
				}

				if tt.succeedAt > 0 {
					eventually(t, 10*time.Second, "the message was not acknowledged", func() bool {
						info := consumerInfo(t, b, "payment")
						return consumed("ok") == 1 && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == 1
					})
					sub.Stop() // the callback in progress has returned: its log lines are written
					if got := int(calls.Load()); got != tt.wantAttempts {
						t.Fatalf("handler called %d times, want %d", got, tt.wantAttempts)
					}
					if got := streamEventIDs(t, b, dlSubject); len(got) != 0 {
						t.Fatalf("a message that succeeded on attempt %d was dead-lettered: %v", tt.succeedAt, got)
					}
					if got := metricSum(t, reg, "events_dead_letter_total"); got != 0 {
						t.Fatalf("events_dead_letter_total = %v, want 0", got)
					}
					if got := consumed("retry"); got != float64(tt.succeedAt-1) {
						t.Fatalf("events_consumer_messages_total{result=retry} = %v, want %d", got, tt.succeedAt-1)
					}
					all := logs()
					if dl := deadLetterLines(all); len(dl) != 0 {
						t.Fatalf("dead-letter log lines for a message that succeeded on attempt %d: %v", tt.succeedAt, dl)
					}
					if got := len(linesWithMsg(all, logRetrying)); got != tt.succeedAt-1 {
						t.Fatalf("%d %q log lines, want one per failed attempt (%d):\n%v", got, logRetrying, tt.succeedAt-1, all)
					}
					return
				}

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
				eventually(t, 5*time.Second, "no dead-letter log line", func() bool {
					return len(deadLetterLines(logs())) > 0
				})
				sub.Stop() // the callback in progress has returned: its log lines are written
				if got := int(calls.Load()); got != tt.wantAttempts {
					t.Fatalf("handler called %d times, want %d", got, tt.wantAttempts)
				}
				m := lastMessage(t, b, dlSubject)
				if m.Header.Get(events.HeaderDeadLetterAttempts) != strconv.Itoa(tt.wantAttempts) ||
					m.Header.Get(events.HeaderDeadLetterConsumer) != "payment" ||
					m.Header.Get(events.HeaderDeadLetterError) != tt.err.Error() {
					t.Fatalf("dead-letter headers %v", m.Header)
				}
				if got := metricSum(t, reg, "events_dead_letter_total"); got != 1 {
					t.Fatalf("events_dead_letter_total = %v, want 1", got)
				}
				if got := counterValue(t, reg, "events_dead_letter_total", map[string]string{"consumer": "payment", "type": orderCreated}); got != 1 {
					t.Fatalf("events_dead_letter_total{consumer=payment,type=%s} = %v, want 1", orderCreated, got)
				}
				if got := consumed("dead_letter"); got != 1 {
					t.Fatalf("events_consumer_messages_total{result=dead_letter} = %v, want 1", got)
				}

				all := logs()
				dl := deadLetterLines(all)
				if len(dl) != 1 {
					t.Fatalf("%d dead-letter log lines, want exactly 1:\n%v", len(dl), dl)
				}
				line := dl[0]
				want := map[string]string{
					"level": "ERROR", "msg": logDeadLettered,
					"consumer": "payment", "type": orderCreated, "event_id": env.GetEventId(), "err": tt.err.Error(),
				}
				for k, v := range want {
					if got := line.str(k); got != v {
						t.Errorf("dead-letter log line: %s = %q, want %q (line %v)", k, got, v, line)
					}
				}
				if got, _ := line["attempts"].(float64); int(got) != tt.wantAttempts {
					t.Errorf("dead-letter log line: attempts = %v, want %d (line %v)", line["attempts"], tt.wantAttempts, line)
				}
				// Every failed attempt before the last logs a redelivery warning, none after it.
				if got := len(linesWithMsg(all, logRetrying)); got != tt.wantAttempts-1 {
					t.Errorf("%d %q log lines, want %d:\n%v", got, logRetrying, tt.wantAttempts-1, all)
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

// TestInstancesOfOneServiceShareTheWork runs two instances of one service, each on its own
// connection with its own metrics, on one durable consumer: the broker spreads the messages
// over both (a pull consumer hands pending pulls messages in turn), each message is handled by
// one of them once, and none is lost.
func TestInstancesOfOneServiceShareTheWork(t *testing.T) {
	for _, bc := range brokers() {
		t.Run(bc.name, func(t *testing.T) {
			const instances, n = 2, 100
			regs := make([]*prometheus.Registry, instances)
			cfgs := make([]events.Config, instances)
			for i := range cfgs {
				regs[i] = prometheus.NewRegistry()
				cfgs[i] = events.Config{Name: "orderd-" + strconv.Itoa(i), Registerer: regs[i]}
			}
			bs := bc.openShared(t, cfgs...)
			db := openDB(t)
			var mu sync.Mutex
			handled := make([]map[string]int, instances) // by instance: event id -> deliveries
			var subs []events.Subscription
			defer func() {
				for _, sub := range subs {
					sub.Stop()
				}
			}()
			for i, b := range bs {
				handled[i] = map[string]int{}
				h := applyOnce(db, "order")
				sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "order", []string{orderCreated},
					func(ctx context.Context, m events.Message) error {
						mu.Lock()
						handled[i][m.ID]++
						mu.Unlock()
						return h(ctx, m)
					})
				if err != nil {
					t.Fatal(err)
				}
				subs = append(subs, sub)
			}
			published := map[string]bool{}
			for i := range n {
				env := newOrderCreated(t, "o"+strconv.Itoa(i))
				publishEnvelope(t, bs[i%instances], env, env.GetEventId())
				published[env.GetEventId()] = true
			}
			eventually(t, 20*time.Second, "not every event was handled and acknowledged", func() bool {
				var rows int
				if err := db.QueryRow(`SELECT COUNT(*) FROM effects`).Scan(&rows); err != nil {
					t.Fatal(err)
				}
				info := consumerInfo(t, bs[0], "order")
				return rows == n && info.NumAckPending == 0 && info.NumPending == 0 && info.AckFloor.Stream == n
			})
			for _, sub := range subs {
				sub.Stop() // no delivery after this
			}

			var once int
			if err := db.QueryRow(`SELECT COUNT(*) FROM effects WHERE n = 1`).Scan(&once); err != nil {
				t.Fatal(err)
			}
			if once != n {
				t.Fatalf("%d orders took effect exactly once, want %d", once, n)
			}
			mu.Lock()
			defer mu.Unlock()
			seen := map[string][]int{} // event id -> the instance of every delivery
			for i, ids := range handled {
				for id, k := range ids {
					for range k {
						seen[id] = append(seen[id], i)
					}
				}
			}
			for id := range published {
				switch got := seen[id]; {
				case len(got) == 0:
					t.Errorf("event %s was handled by no instance", id)
				case len(got) > 1:
					t.Errorf("event %s was delivered %d times (instances %v), want once", id, len(got), got)
				}
			}
			for id := range seen {
				if !published[id] {
					t.Errorf("instance handled event %s, never published", id)
				}
			}
			counts := make([]int, instances)
			for i, ids := range handled {
				counts[i] = len(ids)
				if len(ids) == 0 {
					t.Errorf("instance %d handled none of the %d messages (per instance: %v)", i, n, counts)
				}
				// What the instance's own metrics report agrees with what its handler saw.
				if got := counterValue(t, regs[i], "events_consumer_messages_total", map[string]string{"consumer": "order", "result": "ok"}); int(got) != len(ids) {
					t.Errorf("instance %d: events_consumer_messages_total{result=ok} = %v, its handler saw %d", i, got, len(ids))
				}
			}
			t.Logf("messages per instance: %v", counts)
		})
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
