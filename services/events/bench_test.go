package events_test

import (
	"context"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/services/events"
)

// BenchmarkRelay measures the relay's cost per outbox row: read, publish with the broker's ack,
// mark published. b.N rows are committed first (not timed).
func BenchmarkRelay(b *testing.B) {
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
	db := openDBFor(b)
	ctx := context.Background()
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for range b.N {
		env, err := events.NewEnvelope("order", "o", &eventsv1.OrderConfirmed{OrderId: "o"}, time.Now(), nil)
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
