package testkafka_test

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"go.uber.org/goleak"

	"github.com/acme/shopgate/internal/testkafka"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// roundTrip produces n records to topic and consumes them back from the start, failing t when
// one is missing.
func roundTrip(t *testing.T, seeds []string, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.RetryBackoffFn(func(int) time.Duration { return 50 * time.Millisecond }))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// The cluster does not create topics on first use (as production clusters configured with
	// auto.create.topics.enable=false): create it.
	createTopic(t, p, topic)
	for i := range n {
		if err := p.ProduceSync(ctx, &kgo.Record{Topic: topic, Key: []byte(strconv.Itoa(i)), Value: []byte(strconv.Itoa(i))}).FirstErr(); err != nil {
			t.Fatalf("producing record %d: %v", i, err)
		}
	}
	c, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got := map[string]bool{}
	for len(got) < n {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("consumed %d of %d records: %v", len(got), n, ctx.Err())
		}
		fs.EachRecord(func(r *kgo.Record) { got[string(r.Value)] = true })
	}
}

// createTopic creates topic with 3 partitions, replication factor 3, unless it exists.
func createTopic(t *testing.T, cl *kgo.Client, topic string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 3, 3, nil, topic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		t.Fatalf("creating topic %s: %v", topic, err)
	}
}

func TestClusterServesKafkaOnEveryBroker(t *testing.T) {
	c := testkafka.Start(t, 3)
	addrs := c.Addrs()
	if len(addrs) != 3 {
		t.Fatalf("Addrs() = %v, want 3", addrs)
	}
	if want := "kafka://" + strings.Join(addrs, ","); c.URL() != want {
		t.Fatalf("URL() = %q, want %q", c.URL(), want)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	brokers, err := kadm.NewClient(cl).ListBrokers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(brokers) != 3 {
		t.Fatalf("metadata lists %d brokers, want 3", len(brokers))
	}
	for i, a := range addrs {
		// Each address is a broker on its own: a client seeded with it alone works.
		roundTrip(t, []string{a}, "t"+strconv.Itoa(i), 5)
	}
}

func TestStopAndRestartBroker(t *testing.T) {
	c := testkafka.Start(t, 3)
	addrs := c.Addrs()
	admin, err := kgo.NewClient(kgo.SeedBrokers(addrs...))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	for _, topic := range []string{"before", "while-stopped", "after"} {
		createTopic(t, admin, topic) // replication factor 3: created while every broker runs
	}
	roundTrip(t, addrs, "before", 20)

	c.StopBroker(0)
	if conn, err := net.DialTimeout("tcp", addrs[0], time.Second); err == nil {
		conn.Close()
		t.Fatalf("a stopped broker still accepts connections on %s", addrs[0])
	}
	c.StopBroker(0) // idempotent
	roundTrip(t, addrs, "while-stopped", 20)

	c.RestartBroker(0)
	if got := c.Addrs(); got[0] != addrs[0] {
		t.Fatalf("restarted broker at %s, want its address %s", got[0], addrs[0])
	}
	roundTrip(t, addrs[:1], "after", 20) // served by the restarted broker, seeded alone
}
