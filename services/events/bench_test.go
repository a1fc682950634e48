package events_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/internal/testkafka"
	"github.com/acme/shopgate/services/events"
)

// BenchmarkRelay measures the relay's cost per outbox row: read, publish with the broker's ack,
// mark published. b.N rows are committed first (not timed). On the embedded JetStream broker
// the rows go one by one; on Kafka (kfake, three brokers, acks=all) a round's rows go in one
// pipelined batch.
func BenchmarkRelay(b *testing.B) {
	b.Run("embedded", func(b *testing.B) {
		e, err := events.StartEmbedded(b.TempDir(), events.EmbeddedConfig{})
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		br, err := e.Connect(context.Background(), events.Config{})
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		benchRelay(b, br)
	})
	b.Run("kafka", func(b *testing.B) {
		c := testkafka.Start(b, 3)
		br, err := events.DialKafka(context.Background(), c.URL(),
			events.Config{Kafka: events.KafkaConfig{Topic: "bench", Partitions: 3, ReplicationFactor: 3}})
		if err != nil {
			b.Fatal(err)
		}
		defer br.Close()
		benchRelay(b, br)
	})
}

func benchRelay(b *testing.B, br events.Broker) {
	db := openDBFor(b)
	ctx := context.Background()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for i := range b.N {
		id := "o" + strconv.Itoa(i%64)
		env, err := events.NewEnvelope("order", id, &eventsv1.OrderConfirmed{OrderId: id}, time.Now(), nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := events.Append(ctx, tx, env); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	r, err := events.NewRelay(db, br, events.RelayConfig{})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	done := 0
	for done < b.N {
		n, err := r.PublishPending(ctx)
		if err != nil {
			b.Fatal(err)
		}
		done += n
	}
	b.StopTimer()
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N), "us/row")
}
