package events_test

import (
	"context"
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/shopgate/internal/testkafka"
	"github.com/acme/shopgate/internal/tlsfiles"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
	"github.com/acme/shopgate/services/events"
)

func TestParseKafkaURL(t *testing.T) {
	tests := []struct {
		url     string
		want    []string
		wantErr bool
	}{
		{"kafka://127.0.0.1:9092", []string{"127.0.0.1:9092"}, false},
		{"kafka://a:9092,b:9093,kafka://c:9094", []string{"a:9092", "b:9093", "c:9094"}, false},
		{"kafka://[::1]:9092", []string{"[::1]:9092"}, false},
		{"nats://a:4222", nil, true},
		{"kafka://a", nil, true},
		{"kafka://a:0", nil, true},
		{"kafka://a:9092,", nil, true},
		{"kafka://:9092", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			got, err := events.ParseKafkaURL(tt.url)
			if (err != nil) != tt.wantErr || !slices.Equal(got, tt.want) {
				t.Fatalf("ParseKafkaURL = %v, %v; want %v, error %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// topicShape returns the partition count and the replicas of each partition of topic.
func topicShape(t *testing.T, adm *kadm.Client, topic string) (partitions int, replicas []int) {
	t.Helper()
	td, err := adm.ListTopics(ctxTimeout(t, 5*time.Second), topic)
	if err != nil {
		t.Fatal(err)
	}
	d, ok := td[topic]
	if !ok || d.Err != nil {
		t.Fatalf("topic %s: %v (found %v)", topic, d.Err, ok)
	}
	for _, p := range d.Partitions.Sorted() {
		replicas = append(replicas, len(p.Replicas))
	}
	return len(d.Partitions), replicas
}

func TestKafkaCreatesMissingTopics(t *testing.T) {
	c := testkafka.Start(t, 3)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(c.Addrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)

	t.Run("created with the configured partitions and replication factor", func(t *testing.T) {
		cfg := events.Config{Kafka: events.KafkaConfig{Topic: "created", Partitions: 5, ReplicationFactor: 3}}
		b, err := events.DialKafka(ctxTimeout(t, 10*time.Second), c.URL(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "inventory", []string{typeA}, func(context.Context, events.Message) error { return nil })
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Stop()
		for _, topic := range []string{"created", "created.deadletter.inventory"} {
			n, replicas := topicShape(t, adm, topic)
			if n != 5 || !slices.Equal(replicas, []int{3, 3, 3, 3, 3}) {
				t.Errorf("topic %s: %d partitions with replicas %v, want 5 with 3 each", topic, n, replicas)
			}
			rcs, err := adm.DescribeTopicConfigs(ctxTimeout(t, 5*time.Second), topic)
			if err != nil {
				t.Fatal(err)
			}
			rc, err := rcs.On(topic, nil)
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, cfg := range rc.Configs {
				got[cfg.Key] = cfg.MaybeValue()
			}
			if got["min.insync.replicas"] != "2" || got["retention.ms"] != "604800000" {
				t.Errorf("topic %s: min.insync.replicas %q, retention.ms %q; want 2 and 7 days (604800000)",
					topic, got["min.insync.replicas"], got["retention.ms"])
			}
		}
	})
	t.Run("an existing topic is left as it is", func(t *testing.T) {
		if _, err := adm.CreateTopic(ctxTimeout(t, 5*time.Second), 2, 1, nil, "existing"); err != nil {
			t.Fatal(err)
		}
		b, err := events.DialKafka(ctxTimeout(t, 10*time.Second), c.URL(), events.Config{Kafka: events.KafkaConfig{Topic: "existing", Partitions: 5}})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if n, replicas := topicShape(t, adm, "existing"); n != 2 || !slices.Equal(replicas, []int{1, 1}) {
			t.Errorf("existing topic now has %d partitions, replicas %v; want 2, [1 1]", n, replicas)
		}
	})
	t.Run("an impossible replication factor fails at once", func(t *testing.T) {
		start := time.Now()
		_, err := events.DialKafka(ctxTimeout(t, 10*time.Second), c.URL(), events.Config{Kafka: events.KafkaConfig{Topic: "too-many", ReplicationFactor: 4}})
		if err == nil || !strings.Contains(err.Error(), "replication factor 4") {
			t.Fatalf("DialKafka = %v, want an error naming the replication factor", err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("failed after %v: an invalid setting must not be retried", d)
		}
	})
}

// TestKafkaSurvivesABrokerStop publishes and consumes while one of three brokers (the group's
// coordinator, so that the group moves too) stops: nothing is lost, the events of each order
// come first in their order, and the stopped broker comes back.
func TestKafkaSurvivesABrokerStop(t *testing.T) {
	c := testkafka.Start(t, 3)
	cfg := contractRetries
	cfg.RequestTimeout = 10 * time.Second
	cfg.Kafka = events.KafkaConfig{Topic: "flow", Partitions: 3, ReplicationFactor: 3}
	b, err := events.DialKafka(ctxTimeout(t, 10*time.Second), c.URL(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	var got deliveries
	sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "svc", []string{typeA}, func(_ context.Context, m events.Message) error {
		got.add(m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()

	const n, keys = 200, 8
	var want []string
	for i := range n {
		if i == n/2 {
			c.StopBroker(int(c.Kfake().CoordinatorFor("svc")))
		}
		id := "m" + strconv.Itoa(i)
		publish(t, b, events.Message{Type: typeA, ID: id, Key: "order-" + strconv.Itoa(i%keys), Data: []byte(id)})
		want = append(want, id)
	}
	eventually(t, 30*time.Second, "not every event was delivered while a broker was down", func() bool {
		seen := map[string]bool{}
		for _, id := range got.ids() {
			seen[id] = true
		}
		return len(seen) == n
	})
	// At-least-once: a record may come twice; the first deliveries of a key keep its order.
	first := map[string][]string{}
	seen := map[string]bool{}
	for _, m := range got.snapshot() {
		if !seen[m.ID] {
			seen[m.ID] = true
			first[m.Key] = append(first[m.Key], m.ID)
		}
	}
	for k := range keys {
		key := "order-" + strconv.Itoa(k)
		var wantKey []string
		for i := k; i < n; i += keys {
			wantKey = append(wantKey, "m"+strconv.Itoa(i))
		}
		if !slices.Equal(first[key], wantKey) {
			t.Errorf("key %s delivered in the order %v, want %v", key, first[key], wantKey)
		}
	}
	t.Logf("%d deliveries of %d events", len(got.snapshot()), n)
}

// TestKafkaNeverCommitsPastAnUnhandledRecord stops a subscriber while it retries a record: the
// group's committed offset stays on that record, and the next subscriber starts from it.
func TestKafkaNeverCommitsPastAnUnhandledRecord(t *testing.T) {
	c := testkafka.Start(t, 1)
	cfg := events.Config{MaxAttempts: 1000, BackOff: []time.Duration{10 * time.Millisecond},
		Kafka: events.KafkaConfig{Topic: "one", Partitions: 1, ReplicationFactor: 1}}
	b, err := events.DialKafka(ctxTimeout(t, 10*time.Second), c.URL(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	for _, id := range []string{"ok", "stuck", "after"} {
		publish(t, b, events.Message{Type: typeA, ID: id, Key: "o1", Data: []byte(id)})
	}
	var mu sync.Mutex
	attempts := map[string]int{}
	sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "svc", []string{typeA}, func(_ context.Context, m events.Message) error {
		mu.Lock()
		defer mu.Unlock()
		attempts[m.ID] = m.Attempt
		if m.ID == "stuck" {
			return errors.New("dependency down")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the stuck record was not retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return attempts["stuck"] >= 3
	})
	sub.Stop()
	mu.Lock()
	if _, ok := attempts["after"]; ok {
		t.Errorf("the record after the stuck one was handled: %v", attempts)
	}
	mu.Unlock()
	offs, err := kadm.NewClient(b.Client()).FetchOffsets(ctxTimeout(t, 5*time.Second), "svc")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup("one", 0); !ok || o.At != 1 {
		t.Fatalf("committed offset %+v (found %v), want 1: the stuck record's", o, ok)
	}
	var got deliveries
	sub2, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "svc", []string{typeA}, func(_ context.Context, m events.Message) error {
		got.add(m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Stop()
	eventually(t, 10*time.Second, "the next subscriber did not resume", func() bool { return len(got.snapshot()) >= 2 })
	if ids := got.ids(); !slices.Equal(ids, []string{"stuck", "after"}) {
		t.Fatalf("the next subscriber handled %v, want [stuck after]", ids)
	}
	// The deliveries so far travelled with the committed offset.
	mu.Lock()
	defer mu.Unlock()
	if a := got.snapshot()[0].Attempt; a != attempts["stuck"]+1 {
		t.Errorf("the next subscriber's first delivery of the stuck record is attempt %d, want %d", a, attempts["stuck"]+1)
	}
}

// TestRuntimeOnKafka: -broker-url kafka://... runs a service's relay and consumer on Kafka,
// with spans of messaging.system kafka naming the topic.
func TestRuntimeOnKafka(t *testing.T) {
	c := testkafka.Start(t, 3)
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	db := openDB(t)
	r := &recorder{}
	rt, err := events.Start(ctxTimeout(t, 10*time.Second), db, r.consumer(), events.RuntimeConfig{
		URL:            c.URL(),
		Broker:         events.Config{Kafka: events.KafkaConfig{Topic: "rt", Partitions: 3, ReplicationFactor: 3}},
		TracerProvider: tp,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	if _, ok := rt.Broker().(*events.Kafka); !ok {
		t.Fatalf("runtime broker %T, want *events.Kafka", rt.Broker())
	}
	env := commitEvent(t, db, "o-kafka", true)
	rt.Notify()
	eventually(t, 10*time.Second, "the event did not come back through Kafka", func() bool { return len(r.snapshot()) == 1 })
	if got, want := r.snapshot()[0], "created:"+env.GetEventId()+":o-kafka"; got != want {
		t.Fatalf("handled %q, want %q", got, want)
	}
	eventually(t, 5*time.Second, "both spans ended", func() bool { return len(rec.Ended()) == 2 })
	for _, s := range rec.Ended() {
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.Emit()
		}
		if attrs["messaging.system"] != "kafka" || attrs["messaging.destination.name"] != "rt" {
			t.Errorf("%s span attributes %v, want messaging.system kafka, destination rt", s.SpanKind(), attrs)
		}
		if s.SpanKind() != trace.SpanKindProducer && s.SpanKind() != trace.SpanKindConsumer {
			t.Errorf("span kind %v", s.SpanKind())
		}
	}
}

// TestRelayPublishesABatchToKafka: one relay round publishes its rows in one pipelined batch,
// keyed by order id, and each order's events arrive in their commit order.
func TestRelayPublishesABatchToKafka(t *testing.T) {
	b := openKafka(t, events.Config{})[0]
	db := openDB(t)
	want := map[string][]string{} // order id -> event ids in commit order
	for i := range 30 {
		orderID := "o" + strconv.Itoa(i%3)
		env := commitTraced(t, db, orderID, nil)
		want[orderID] = append(want[orderID], env.GetEventId())
	}
	relay, err := events.NewRelay(db, b, events.RelayConfig{BatchSize: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := relay.PublishPending(ctxTimeout(t, 10*time.Second)); n != 30 || err != nil {
		t.Fatalf("PublishPending = %d, %v; want 30 in one round", n, err)
	}
	var got deliveries
	sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "svc", []string{orderCreated}, func(_ context.Context, m events.Message) error {
		got.add(m)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Stop()
	eventually(t, 10*time.Second, "not every event arrived", func() bool { return len(got.snapshot()) >= 30 })
	byKey := map[string][]string{}
	for _, m := range got.snapshot() {
		byKey[m.Key] = append(byKey[m.Key], m.ID)
	}
	for orderID, ids := range want {
		if !slices.Equal(byKey[orderID], ids) {
			t.Errorf("order %s: events %v, want %v in commit order", orderID, byKey[orderID], ids)
		}
	}
}

// TestKafkaOverTLSWithSASL runs a service's events on a cluster that serves TLS only and
// requires SCRAM-SHA-256: the -broker-tls-* files verify the brokers, the SASL mechanism and
// credentials authenticate; without credentials nothing connects.
func TestKafkaOverTLSWithSASL(t *testing.T) {
	ca := tlsfilestest.NewCA(t, "kafka CA")
	pair := ca.Issue(t, "broker")
	cert, err := tls.X509KeyPair(pair.CertPEM, pair.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	c := testkafka.StartWith(t, 3,
		kfake.TLS(&tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{cert}}),
		kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "orderd", "s3cret"))
	files := tlsfilestest.WriteFiles(t, t.TempDir(), ca, ca.Issue(t, "orderd"))
	kcfg := events.KafkaConfig{Topic: "secure", Partitions: 3, ReplicationFactor: 3,
		SASLMechanism: "SCRAM-SHA-256", SASLUser: "orderd", SASLPassword: "s3cret"}

	t.Run("TLS and SASL", func(t *testing.T) {
		db := openDB(t)
		r := &recorder{}
		rt, err := events.Start(ctxTimeout(t, 10*time.Second), db, r.consumer(), events.RuntimeConfig{
			URL: c.URL(), Broker: events.Config{Kafka: kcfg}, TLS: tlsfiles.ClientFiles{CAFile: files.CA},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer rt.Close()
		env := commitEvent(t, db, "o-secure", true)
		rt.Notify()
		eventually(t, 10*time.Second, "the event did not come back", func() bool { return len(r.snapshot()) == 1 })
		if got, want := r.snapshot()[0], "created:"+env.GetEventId()+":o-secure"; got != want {
			t.Fatalf("handled %q, want %q", got, want)
		}
	})
	t.Run("-broker-user and -broker-password-file", func(t *testing.T) {
		pw := filepath.Join(t.TempDir(), "password")
		if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cl, err := tlsfiles.NewClient(tlsfiles.ClientFiles{CAFile: files.CA}, nil)
		if err != nil {
			t.Fatal(err)
		}
		b, err := events.DialKafka(ctxTimeout(t, 10*time.Second), c.URL(), events.Config{TLS: cl, User: "orderd", PasswordFile: pw,
			Kafka: events.KafkaConfig{Topic: "secure", Partitions: 3, ReplicationFactor: 3, SASLMechanism: "SCRAM-SHA-256"}})
		if err != nil {
			t.Fatalf("DialKafka with the user and password file: %v", err)
		}
		_ = b.Close()
	})
	for _, tt := range []struct {
		name string
		cfg  events.KafkaConfig
		tls  *tlsfiles.ClientFiles
	}{
		{"wrong password", events.KafkaConfig{Topic: "secure", SASLMechanism: "SCRAM-SHA-256", SASLUser: "orderd", SASLPassword: "guess"}, &tlsfiles.ClientFiles{CAFile: files.CA}},
		{"no TLS", kcfg, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg := events.Config{Kafka: tt.cfg, ReconnectWait: 50 * time.Millisecond}
			if tt.tls != nil {
				cl, err := tlsfiles.NewClient(*tt.tls, nil)
				if err != nil {
					t.Fatal(err)
				}
				cfg.TLS = cl
			}
			b, err := events.DialKafka(ctxTimeout(t, time.Second), c.URL(), cfg)
			if err == nil {
				_ = b.Close()
				t.Fatal("DialKafka connected")
			}
		})
	}
}

// TestKafkaRetryHoldsBackOnlyItsPartition: while a record is retried in place, the records
// after it in its partition wait, and the other partitions go on.
func TestKafkaRetryHoldsBackOnlyItsPartition(t *testing.T) {
	cfg := events.Config{MaxAttempts: 1000, BackOff: []time.Duration{20 * time.Millisecond}}
	b := openKafka(t, cfg)[0]
	var mu sync.Mutex
	handled := map[string]int{}
	var got deliveries
	release := make(chan struct{})
	sub := subscribe(t, b, "svc", []string{typeA}, func(_ context.Context, m events.Message) error {
		got.add(m)
		if m.ID == "stuck" {
			select {
			case <-release:
				return nil
			default:
				return errors.New("dependency down")
			}
		}
		mu.Lock()
		handled[m.Key]++
		mu.Unlock()
		return nil
	})
	publish(t, b, events.Message{Type: typeA, ID: "stuck", Key: "order-stuck", Data: []byte("x")})
	publish(t, b, events.Message{Type: typeA, ID: "behind", Key: "order-stuck", Data: []byte("x")})
	const others = 30
	for i := range others {
		publish(t, b, events.Message{Type: typeA, ID: "other" + strconv.Itoa(i), Key: "order-" + strconv.Itoa(i), Data: []byte("x")})
	}
	eventually(t, 10*time.Second, "no other partition went on while one record was retried", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) >= others/2
	})
	mu.Lock()
	if handled["order-stuck"] != 0 {
		t.Errorf("the record behind the retried one was handled before it")
	}
	mu.Unlock()
	close(release)
	eventually(t, 10*time.Second, "the held-back record was not handled after the retried one", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return handled["order-stuck"] == 1
	})
	sub.Stop()
	var order []string
	for _, m := range got.snapshot() {
		if m.Key == "order-stuck" {
			order = append(order, m.ID)
		}
	}
	if order[len(order)-1] != "behind" || order[len(order)-2] != "stuck" {
		t.Errorf("key order-stuck delivered %v, want stuck (retried) then behind", order)
	}
}

// TestRelayMarksOnlyTheAcknowledgedPrefixOnKafka: when the broker refuses one partition's
// records in a batch, the relay marks published only the rows before the first refused one;
// the next round publishes the rest, and every order's events still arrive first in order.
func TestRelayMarksOnlyTheAcknowledgedPrefixOnKafka(t *testing.T) {
	c := testkafka.Start(t, 3)
	const topic = "prefix"
	b, err := events.DialKafka(ctxTimeout(t, 10*time.Second), c.URL(),
		events.Config{Kafka: events.KafkaConfig{Topic: topic, Partitions: 3, ReplicationFactor: 3}})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	// Two orders on two partitions; the second one's partition refuses records for a while.
	part := kgo.StickyKeyPartitioner(nil).ForTopic(topic)
	partitionOf := func(key string) int32 { return int32(part.Partition(&kgo.Record{Key: []byte(key)}, 3)) }
	okKey, badKey := "o-ok", ""
	for i := range 100 {
		if k := "o-bad" + strconv.Itoa(i); partitionOf(k) != partitionOf(okKey) {
			badKey = k
			break
		}
	}
	db := openDB(t)
	var want []string // commit order: ok, bad, ok, bad, ok, bad
	for range 3 {
		for _, k := range []string{okKey, badKey} {
			want = append(want, commitTraced(t, db, k, nil).GetEventId())
		}
	}
	fault := c.Kfake().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic,
		Partitions: []int32{partitionOf(badKey)}, Err: kerr.InvalidRecord, Count: -1})
	relay, err := events.NewRelay(db, b, events.RelayConfig{})
	if err != nil {
		t.Fatal(err)
	}
	n, err := relay.PublishPending(ctxTimeout(t, 10*time.Second))
	if n != 1 || err == nil {
		t.Fatalf("PublishPending = %d, %v; want the first row only, and the broker's error", n, err)
	}
	fault.Remove()
	if n, err := relay.PublishPending(ctxTimeout(t, 10*time.Second)); n != 5 || err != nil {
		t.Fatalf("second round: PublishPending = %d, %v; want the 5 other rows", n, err)
	}
	var got deliveries
	sub := subscribe(t, b, "svc", []string{orderCreated}, func(_ context.Context, m events.Message) error { got.add(m); return nil })
	defer sub.Stop()
	eventually(t, 10*time.Second, "not every event arrived", func() bool {
		seen := map[string]bool{}
		for _, id := range got.ids() {
			seen[id] = true
		}
		return len(seen) == len(want)
	})
	first := map[string][]string{}
	seen := map[string]bool{}
	for _, m := range got.snapshot() {
		if !seen[m.ID] {
			seen[m.ID] = true
			first[m.Key] = append(first[m.Key], m.ID)
		}
	}
	for i, k := range []string{okKey, badKey} {
		wantKey := []string{want[i], want[i+2], want[i+4]}
		if !slices.Equal(first[k], wantKey) {
			t.Errorf("order %s: first deliveries %v, want %v", k, first[k], wantKey)
		}
	}
}
