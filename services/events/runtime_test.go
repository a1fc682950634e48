package events_test

import (
	"flag"
	"testing"
	"time"

	"github.com/acme/shopgate/services/events"
)

func TestRuntimeConfigFlags(t *testing.T) {
	tests := []struct {
		name  string
		args  []string
		check func(c events.RuntimeConfig) bool
	}{
		{"defaults", nil, func(c events.RuntimeConfig) bool {
			return c.URL == "" && !c.NoRelay && !c.Relay.DuplicateForTesting && c.Broker.MaxAttempts == 0
		}},
		{"external broker, own stream", []string{"-broker-url", "nats://127.0.0.1:4222", "-broker-stream", "S1", "-broker-subject-prefix", "t1."},
			func(c events.RuntimeConfig) bool {
				return c.URL == "nats://127.0.0.1:4222" && c.Broker.Stream == "S1" && c.Broker.SubjectPrefix == "t1."
			}},
		{"kafka", []string{"-broker-url", "kafka://a:9092,b:9092", "-broker-topic", "shop.orders", "-broker-partitions", "24",
			"-broker-replication-factor", "1", "-broker-sasl-mechanism", "SCRAM-SHA-512"},
			func(c events.RuntimeConfig) bool {
				k := c.Broker.Kafka
				return c.URL == "kafka://a:9092,b:9092" && k.Topic == "shop.orders" && k.Partitions == 24 &&
					k.ReplicationFactor == 1 && k.SASLMechanism == "SCRAM-SHA-512"
			}},
		{"relay off", []string{"-relay=false"}, func(c events.RuntimeConfig) bool { return c.NoRelay }},
		{"relay on", []string{"-relay"}, func(c events.RuntimeConfig) bool { return !c.NoRelay }},
		{"duplicates, attempts, ack wait", []string{"-relay-duplicate-for-testing", "-events-max-attempts", "3", "-events-ack-wait", "2s"},
			func(c events.RuntimeConfig) bool {
				return c.Relay.DuplicateForTesting && c.Broker.MaxAttempts == 3 && c.Broker.AckWait == 2*time.Second
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c events.RuntimeConfig
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			c.RegisterFlags(fs)
			if err := fs.Parse(tt.args); err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("flags %v gave %+v", tt.args, c)
			}
		})
	}
}

// TestRuntimesShareOneEmbeddedBroker runs two services' runtimes in one process on one embedded
// broker, as the single-process stack does: an event committed by one reaches the other.
func TestRuntimesShareOneEmbeddedBroker(t *testing.T) {
	e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
	producerDB, consumerDB := openDB(t), openDB(t)
	silent := events.Consumer{Name: "order", Routes: []events.Route{events.On(new(recorder).HandleOrderCancelled)}}
	producer, err := events.Start(ctxTimeout(t, 5*time.Second), producerDB, silent, events.RuntimeConfig{Embedded: e})
	if err != nil {
		t.Fatal(err)
	}
	defer producer.Close()
	rec := &recorder{}
	consumer, err := events.Start(ctxTimeout(t, 5*time.Second), consumerDB, rec.consumer(), events.RuntimeConfig{Embedded: e})
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()

	env := commitEvent(t, producerDB, "o1", true)
	producer.Notify()
	eventually(t, 10*time.Second, "the event did not reach the other service", func() bool { return len(rec.snapshot()) == 1 })
	if got, want := rec.snapshot()[0], "created:"+env.GetEventId()+":o1"; got != want {
		t.Fatalf("handled %q, want %q", got, want)
	}
	consumer.Close()
	consumer.Close() // idempotent
}

func TestRuntimeEmbedsABrokerWhenNoURL(t *testing.T) {
	db := openDB(t)
	rec := &recorder{}
	rt, err := events.Start(ctxTimeout(t, 5*time.Second), db, rec.consumer(), events.RuntimeConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	env := commitEvent(t, db, "o2", true) // the service consumes its own event type here
	rt.Notify()
	eventually(t, 10*time.Second, "the event did not come back through the embedded broker", func() bool { return len(rec.snapshot()) == 1 })
	if got, want := rec.snapshot()[0], "created:"+env.GetEventId()+":o2"; got != want {
		t.Fatalf("handled %q, want %q", got, want)
	}
}
