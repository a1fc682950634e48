package events_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/acme/shopgate/internal/testkafka"
	"github.com/acme/shopgate/services/events"
)

// The contract suite: what every Broker adapter must do, run against each backend with the
// same test functions. A new adapter adds its backend to backends() and passes it.

// backend is one broker implementation under the contract.
type backend struct {
	name string
	// open opens one connection per cfg to one fresh broker (a stream or topic of the test's
	// own), as the instances of services in separate processes would.
	open func(t *testing.T, cfgs ...events.Config) []events.Broker
	// deadLetter waits for consumer's dead-letter copy of a message of eventType on b and
	// returns its data and headers.
	deadLetter func(t *testing.T, b events.Broker, consumer, eventType string) ([]byte, map[string]string)
	// settle waits until n subscribers of consumer are known to the broker and share the
	// work (a Kafka group has balanced); nil: nothing to wait for.
	settle func(t *testing.T, b events.Broker, consumer string, n int)
}

// contractRetries: quick redeliveries, three attempts.
var contractRetries = events.Config{MaxAttempts: 3, BackOff: []time.Duration{20 * time.Millisecond, 40 * time.Millisecond}}

func backends() []backend {
	var out []backend
	for _, bc := range brokers() { // embedded and external NATS
		out = append(out, backend{
			name: bc.name,
			open: func(t *testing.T, cfgs ...events.Config) []events.Broker {
				var bs []events.Broker
				for _, b := range bc.openShared(t, cfgs...) {
					bs = append(bs, b)
				}
				return bs
			},
			deadLetter: jetStreamDeadLetter,
		})
	}
	return append(out, backend{name: "kafka", open: openKafka, deadLetter: kafkaDeadLetter, settle: kafkaSettle})
}

func jetStreamDeadLetter(t *testing.T, b events.Broker, consumer, eventType string) ([]byte, map[string]string) {
	t.Helper()
	js := b.(*events.JetStream)
	var data []byte
	var headers map[string]string
	eventually(t, 10*time.Second, "no dead-letter message", func() bool {
		ctx := ctxTimeout(t, 5*time.Second)
		s, err := js.JetStream().Stream(ctx, js.Stream())
		if err != nil {
			t.Fatal(err)
		}
		m, err := s.GetLastMsgForSubject(ctx, js.DeadLetterSubject(consumer, eventType))
		if err != nil {
			return false
		}
		data, headers = m.Data, map[string]string{}
		for k, v := range m.Header {
			headers[k] = v[0]
		}
		return true
	})
	return data, headers
}

// openKafka starts a three-broker cluster and opens the connections on a topic of the test's
// own, three partitions, replication factor 3.
func openKafka(t *testing.T, cfgs ...events.Config) []events.Broker {
	t.Helper()
	c := testkafka.Start(t, 3)
	topic := "test-" + events.NewID()[:12]
	var bs []events.Broker
	for _, cfg := range cfgs {
		cfg.Kafka = events.KafkaConfig{Topic: topic, Partitions: 3, ReplicationFactor: 3}
		b, err := events.DialKafka(ctxTimeout(t, 10*time.Second), c.URL(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Close() })
		bs = append(bs, b)
	}
	return bs
}

func kafkaDeadLetter(t *testing.T, b events.Broker, consumer, _ string) ([]byte, map[string]string) {
	t.Helper()
	k := b.(*events.Kafka)
	cl, err := kgo.NewClient(kgo.SeedBrokers(seedsOf(t, k)...), kgo.ConsumeTopics(k.DeadLetterTopic(consumer)),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx := ctxTimeout(t, 10*time.Second)
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("no dead-letter record on %s: %v", k.DeadLetterTopic(consumer), ctx.Err())
		}
		if recs := fs.Records(); len(recs) > 0 {
			headers := map[string]string{}
			for _, h := range recs[0].Headers {
				headers[h.Key] = string(h.Value)
			}
			return recs[0].Value, headers
		}
	}
}

// seedsOf returns the addresses of the brokers k's client knows.
func seedsOf(t *testing.T, k *events.Kafka) []string {
	t.Helper()
	bs, err := kadm.NewClient(k.Client()).ListBrokers(ctxTimeout(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var seeds []string
	for _, b := range bs {
		seeds = append(seeds, b.Host+":"+strconv.Itoa(int(b.Port)))
	}
	return seeds
}

func kafkaSettle(t *testing.T, b events.Broker, consumer string, n int) {
	t.Helper()
	adm := kadm.NewClient(b.(*events.Kafka).Client())
	eventually(t, 20*time.Second, fmt.Sprintf("group %s did not balance %d members", consumer, n), func() bool {
		gs, err := adm.DescribeGroups(ctxTimeout(t, 5*time.Second), consumer)
		if err != nil {
			return false
		}
		g := gs[consumer]
		if g.State != "Stable" || len(g.Members) != n {
			return false
		}
		for _, m := range g.Members {
			if a, ok := m.Assigned.AsConsumer(); !ok || len(a.Topics) == 0 || len(a.Topics[0].Partitions) == 0 {
				return false
			}
		}
		return true
	})
}

// deliveries records what a subscription's handler saw.
type deliveries struct {
	mu   sync.Mutex
	msgs []events.Message
}

func (d *deliveries) add(m events.Message) {
	d.mu.Lock()
	d.msgs = append(d.msgs, m)
	d.mu.Unlock()
}

func (d *deliveries) snapshot() []events.Message {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.msgs)
}

func (d *deliveries) ids() []string {
	var ids []string
	for _, m := range d.snapshot() {
		ids = append(ids, m.ID)
	}
	return ids
}

func subscribe(t *testing.T, b events.Broker, consumer string, types []string, h events.Handler) events.Subscription {
	t.Helper()
	sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), consumer, types, h)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Stop)
	return sub
}

func publish(t *testing.T, b events.Broker, m events.Message) {
	t.Helper()
	if err := b.Publish(ctxTimeout(t, 5*time.Second), m); err != nil {
		t.Fatal(err)
	}
}

const typeA, typeB = "test.v1.A", "test.v1.B"

func TestContractPublishAndConsume(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			b := be.open(t, contractRetries)[0]
			var got deliveries
			subscribe(t, b, "svc", []string{typeA}, func(_ context.Context, m events.Message) error { got.add(m); return nil })
			publish(t, b, events.Message{Type: typeB, ID: "b1", Key: "o1", Data: []byte("not subscribed")})
			for i := range 3 {
				publish(t, b, events.Message{Type: typeA, ID: "a" + strconv.Itoa(i), Key: "o1", Data: []byte("data" + strconv.Itoa(i)),
					Headers: map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}})
			}
			eventually(t, 10*time.Second, "not every message was delivered", func() bool { return len(got.snapshot()) >= 3 })
			msgs := got.snapshot()
			if len(msgs) != 3 {
				t.Fatalf("%d deliveries, want 3 (only type %s): %+v", len(msgs), typeA, msgs)
			}
			for i, m := range msgs {
				if m.Type != typeA || m.ID != "a"+strconv.Itoa(i) || string(m.Data) != "data"+strconv.Itoa(i) || m.Attempt != 1 {
					t.Errorf("delivery %d = %+v", i, m)
				}
				if m.Headers["traceparent"] == "" {
					t.Errorf("delivery %d lost its headers: %v", i, m.Headers)
				}
			}
		})
	}
}

func TestContractKeepsTheOrderOfAKey(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			b := be.open(t, contractRetries)[0]
			var got deliveries
			subscribe(t, b, "svc", []string{typeA, typeB}, func(_ context.Context, m events.Message) error { got.add(m); return nil })
			const keys, per = 6, 15
			want := map[string][]string{}
			for i := range per {
				for k := range keys {
					key := "order-" + strconv.Itoa(k)
					id := key + "/" + strconv.Itoa(i)
					typ := typeA
					if i%2 == 1 {
						typ = typeB // the order holds across event types
					}
					publish(t, b, events.Message{Type: typ, ID: id, Key: key, Data: []byte(id)})
					want[key] = append(want[key], id)
				}
			}
			eventually(t, 20*time.Second, "not every message was delivered", func() bool { return len(got.snapshot()) >= keys*per })
			byKey := map[string][]string{}
			for _, m := range got.snapshot() {
				key := m.ID[:len("order-0")]
				byKey[key] = append(byKey[key], m.ID)
			}
			for key, ids := range want {
				if !slices.Equal(byKey[key], ids) {
					t.Errorf("key %s delivered in the order %v, want %v", key, byKey[key], ids)
				}
			}
		})
	}
}

func TestContractRedeliversAfterAFailure(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			b := be.open(t, contractRetries)[0]
			var got deliveries
			subscribe(t, b, "svc", []string{typeA}, func(_ context.Context, m events.Message) error {
				got.add(m)
				if m.Attempt < 3 {
					return errors.New("database busy")
				}
				return nil
			})
			publish(t, b, events.Message{Type: typeA, ID: "a1", Key: "o1", Data: []byte("x")})
			eventually(t, 10*time.Second, "the message was not retried to success", func() bool { return len(got.snapshot()) >= 3 })
			var attempts []int
			for _, m := range got.snapshot() {
				if m.ID != "a1" {
					t.Errorf("delivered %q, want a1", m.ID)
				}
				attempts = append(attempts, m.Attempt)
			}
			if !slices.Equal(attempts, []int{1, 2, 3}) {
				t.Fatalf("attempts %v, want [1 2 3]", attempts)
			}
		})
	}
}

func TestContractDeadLetters(t *testing.T) {
	tests := []struct {
		name         string
		err          error
		wantAttempts int
	}{
		{"after max attempts", errors.New("stock service down"), 3},
		{"at once on ErrPermanent", fmt.Errorf("undecodable: %w", events.ErrPermanent), 1},
	}
	for _, be := range backends() {
		for _, tt := range tests {
			t.Run(be.name+"/"+tt.name, func(t *testing.T) {
				b := be.open(t, contractRetries)[0]
				var got deliveries
				subscribe(t, b, "svc", []string{typeA}, func(_ context.Context, m events.Message) error {
					got.add(m)
					if m.ID == "poison" {
						return tt.err
					}
					return nil
				})
				publish(t, b, events.Message{Type: typeA, ID: "poison", Key: "o1", Data: []byte("poison data")})
				publish(t, b, events.Message{Type: typeA, ID: "next", Key: "o1", Data: []byte("next data")})
				data, headers := be.deadLetter(t, b, "svc", typeA)
				if string(data) != "poison data" {
					t.Errorf("dead letter data %q, want the message's", data)
				}
				for k, want := range map[string]string{
					events.HeaderDeadLetterConsumer: "svc",
					events.HeaderDeadLetterError:    tt.err.Error(),
					events.HeaderDeadLetterAttempts: strconv.Itoa(tt.wantAttempts),
				} {
					if headers[k] != want {
						t.Errorf("dead letter header %s = %q, want %q (all: %v)", k, headers[k], want, headers)
					}
				}
				// The next message of the key goes on once the poison one is given up.
				eventually(t, 10*time.Second, "the message after the dead-lettered one was not delivered", func() bool {
					return slices.Contains(got.ids(), "next")
				})
				var poison int
				for _, id := range got.ids() {
					if id == "poison" {
						poison++
					}
				}
				if poison != tt.wantAttempts {
					t.Errorf("poison delivered %d times, want %d", poison, tt.wantAttempts)
				}
			})
		}
	}
}

func TestContractSubscribersShareTheWork(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			c0, c1 := contractRetries, contractRetries
			c0.Name, c1.Name = "sub0", "sub1"
			bs := be.open(t, c0, c1)
			var got [2]deliveries
			for i, b := range bs {
				subscribe(t, b, "svc", []string{typeA}, func(_ context.Context, m events.Message) error { got[i].add(m); return nil })
			}
			if be.settle != nil {
				be.settle(t, bs[0], "svc", 2)
			}
			const n = 60
			for i := range n {
				id := "m" + strconv.Itoa(i)
				publish(t, bs[i%2], events.Message{Type: typeA, ID: id, Key: "order-" + strconv.Itoa(i), Data: []byte(id)})
			}
			eventually(t, 20*time.Second, "not every message was delivered", func() bool {
				return len(got[0].snapshot())+len(got[1].snapshot()) >= n
			})
			seen := map[string]int{}
			for i := range got {
				if len(got[i].snapshot()) == 0 {
					t.Errorf("subscriber %d handled nothing: the work is not shared", i)
				}
				for _, id := range got[i].ids() {
					seen[id]++
				}
			}
			for i := range n {
				if id := "m" + strconv.Itoa(i); seen[id] != 1 {
					t.Errorf("message %s handled %d times, want once", id, seen[id])
				}
			}
		})
	}
}

// TestContractStoppedSubscriberHandsTheMessageOver: a subscriber stopped while its handler
// fails hands the message over, unacknowledged, to the other subscriber of the consumer, with
// the attempt count so far.
func TestContractStoppedSubscriberHandsTheMessageOver(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			bs := be.open(t, contractRetries, contractRetries)
			held := make(chan int, 2)
			release := make(chan struct{})
			var mu sync.Mutex
			holder := -1
			var got [2]deliveries
			subs := make([]events.Subscription, 2)
			for i, b := range bs {
				subs[i] = subscribe(t, b, "svc", []string{typeA}, func(_ context.Context, m events.Message) error {
					got[i].add(m)
					mu.Lock()
					first := holder == -1
					if first {
						holder = i
					}
					mu.Unlock()
					if first {
						held <- i
						<-release
						return errors.New("interrupted") // never acknowledged
					}
					return nil
				})
			}
			if be.settle != nil {
				be.settle(t, bs[0], "svc", 2)
			}
			publish(t, bs[0], events.Message{Type: typeA, ID: "m1", Key: "o1", Data: []byte("x")})
			var h int
			select {
			case h = <-held:
			case <-time.After(10 * time.Second):
				t.Fatal("the message was not delivered")
			}
			stopped := make(chan struct{})
			go func() { subs[h].Stop(); close(stopped) }()
			close(release)
			<-stopped
			other := 1 - h
			eventually(t, 20*time.Second, "the unacknowledged message did not go to the other subscriber", func() bool {
				return slices.Contains(got[other].ids(), "m1")
			})
			// The attempt count travels: the other subscriber's delivery is the second.
			if m := got[other].snapshot()[0]; m.ID != "m1" || m.Attempt != 2 {
				t.Errorf("the other subscriber got %s at attempt %d, want m1 at attempt 2", m.ID, m.Attempt)
			}
		})
	}
}

func TestContractStopWaitsForTheHandler(t *testing.T) {
	for _, be := range backends() {
		t.Run(be.name, func(t *testing.T) {
			b := be.open(t, contractRetries)[0]
			started, release := make(chan struct{}), make(chan struct{})
			var mu sync.Mutex
			finished := false
			sub := subscribe(t, b, "svc", []string{typeA}, func(context.Context, events.Message) error {
				close(started)
				<-release
				mu.Lock()
				finished = true
				mu.Unlock()
				return nil
			})
			publish(t, b, events.Message{Type: typeA, ID: "m1", Key: "o1", Data: []byte("x")})
			<-started
			stopped := make(chan struct{})
			go func() { sub.Stop(); close(stopped) }()
			select {
			case <-stopped:
				t.Fatal("Stop returned while the handler was running")
			case <-time.After(100 * time.Millisecond):
			}
			close(release)
			<-stopped
			mu.Lock()
			defer mu.Unlock()
			if !finished {
				t.Fatal("Stop returned before the handler finished")
			}
		})
	}
}
