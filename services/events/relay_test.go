package events_test

import (
	"context"
	"database/sql"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/services/events"
	"github.com/prometheus/client_golang/prometheus"
)

func TestRelayPublishesCommittedRowsInOrderOnce(t *testing.T) {
	for _, bc := range brokers() {
		t.Run(bc.name, func(t *testing.T) {
			b := bc.open(t, events.Config{})
			db := openDB(t)
			var want []string
			for i := range 7 {
				commit := i != 3 // the fourth transaction rolls back: its event must never leave
				env := commitEvent(t, db, events.NewID(), commit)
				if commit {
					want = append(want, env.GetEventId())
				}
			}
			reg := prometheus.NewRegistry()
			r, err := events.NewRelay(db, b, events.RelayConfig{Name: "test", BatchSize: 4, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			ctx := ctxTimeout(t, 10*time.Second)
			total := 0
			for {
				n, err := r.PublishPending(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				total += n
			}
			if total != len(want) {
				t.Fatalf("published %d rows, want %d", total, len(want))
			}
			subject := b.Subject("shop.events.v1.OrderCreated")
			if got := streamEventIDs(t, b, subject); !slices.Equal(got, want) {
				t.Fatalf("stream holds %v, want %v in commit order", got, want)
			}
			if got := metricSum(t, reg, "events_relay_published_total"); got != float64(len(want)) {
				t.Fatalf("published metric %v, want %d", got, len(want))
			}

			// A crash between the broker's ack and the mark: the rows are published again and the
			// broker drops the copies by their message id.
			if _, err := db.Exec(`UPDATE outbox SET published_at = NULL`); err != nil {
				t.Fatal(err)
			}
			if n, err := r.PublishPending(ctx); err != nil || n != 4 {
				t.Fatalf("republishing: %d rows, %v", n, err)
			}
			if got := streamEventIDs(t, b, subject); !slices.Equal(got, want) {
				t.Fatalf("after republishing, stream holds %v, want %v", got, want)
			}
		})
	}
}

// TestRelayMarksExactlyWhatItPublished: a row that commits inside the seq range of a batch
// after the batch was read (a lower seq committing later, as under concurrent writers) is not
// marked published with the batch: it goes out in the next round, not never.
func TestRelayMarksExactlyWhatItPublished(t *testing.T) {
	e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
	b := connectEmbedded(t, e, events.Config{})
	db := openDB(t)
	var ids []string
	for range 3 {
		ids = append(ids, commitEvent(t, db, events.NewID(), true).GetEventId())
	}
	// The middle row has not committed yet when the relay reads the outbox: take it out, and
	// put it back (same seq) while the relay publishes the first row.
	type row struct {
		seq           int64
		id, eventType string
		env           []byte
		created       int64
	}
	var late row
	if err := db.QueryRow(`SELECT seq, event_id, event_type, envelope, created_at FROM outbox WHERE event_id = ?`, ids[1]).
		Scan(&late.seq, &late.id, &late.eventType, &late.env, &late.created); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`DELETE FROM outbox WHERE seq = ?`, late.seq); err != nil {
		t.Fatal(err)
	}
	commitLate := &hookBroker{JetStream: b, before: func() {
		if _, err := db.Exec(`INSERT INTO outbox (seq, event_id, event_type, envelope, created_at) VALUES (?, ?, ?, ?, ?)`,
			late.seq, late.id, late.eventType, late.env, late.created); err != nil {
			t.Error(err)
		}
	}}
	r, err := events.NewRelay(db, commitLate, events.RelayConfig{Name: "test"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	if n, err := r.PublishPending(ctx); err != nil || n != 2 {
		t.Fatalf("first round: %d rows, %v; want the 2 read", n, err)
	}
	if got := unpublished(t, db); got != 1 {
		t.Fatalf("%d rows unpublished after the first round, want 1: the row that committed late", got)
	}
	if n, err := r.PublishPending(ctx); err != nil || n != 1 {
		t.Fatalf("second round: %d rows, %v; want the late one", n, err)
	}
	got := streamEventIDs(t, b, b.Subject("shop.events.v1.OrderCreated"))
	slices.Sort(got)
	want := slices.Clone(ids)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Fatalf("stream holds %v, want every event %v", got, want)
	}
}

// hookBroker runs before (once) ahead of its first Publish.
type hookBroker struct {
	*events.JetStream
	before func()
	once   sync.Once
}

func (h *hookBroker) Publish(ctx context.Context, msg events.Message) error {
	h.once.Do(h.before)
	return h.JetStream.Publish(ctx, msg)
}

// metricSum sums the counter name over its label values in g.
func metricSum(t *testing.T, g prometheus.Gatherer, name string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
		}
	}
	return sum
}

func unpublished(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM outbox WHERE published_at IS NULL`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestRelayNotifyWakesItAtOnce(t *testing.T) {
	e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
	b := connectEmbedded(t, e, events.Config{})
	db := openDB(t)
	// The poll would only come after an hour: only Notify can explain a prompt publish.
	r, err := events.NewRelay(db, b, events.RelayConfig{PollInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(func() { _ = r.Close() })
	for i := range 3 {
		commitEvent(t, db, events.NewID(), true)
		r.Notify()
		eventually(t, 5*time.Second, "the notified relay did not publish", func() bool { return unpublished(t, db) == 0 })
		if got := len(streamEventIDs(t, b, "")); got != i+1 {
			t.Fatalf("stream holds %d messages, want %d", got, i+1)
		}
	}
}

func TestRelayBacksOffWhileBrokerIsDownAndResumes(t *testing.T) {
	e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
	b := connectEmbedded(t, e, events.Config{RequestTimeout: 200 * time.Millisecond})
	db := openDB(t)
	reg := prometheus.NewRegistry()
	r, err := events.NewRelay(db, b, events.RelayConfig{PollInterval: time.Hour, MinBackoff: 20 * time.Millisecond,
		MaxBackoff: 100 * time.Millisecond, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	t.Cleanup(func() { _ = r.Close() })

	e.Stop()
	commitEvent(t, db, events.NewID(), true)
	r.Notify()
	eventually(t, 5*time.Second, "no failed round counted while the broker was down", func() bool {
		return metricSum(t, reg, "events_relay_errors_total") >= 1
	})
	if unpublished(t, db) != 1 {
		t.Fatal("a row was marked published while the broker was down")
	}
	if err := e.Start(); err != nil {
		t.Fatal(err)
	}
	// No Notify: the backoff loop alone must bring the row out.
	eventually(t, 10*time.Second, "the relay did not resume after the broker came back", func() bool { return unpublished(t, db) == 0 })
	if got := len(streamEventIDs(t, b, "")); got != 1 {
		t.Fatalf("stream holds %d messages, want 1", got)
	}
}

func TestRelayPrunesPublishedRowsAfterRetention(t *testing.T) {
	e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
	b := connectEmbedded(t, e, events.Config{})
	db := openDB(t)
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	r, err := events.NewRelay(db, b, events.RelayConfig{Retention: time.Hour, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	commitEvent(t, db, events.NewID(), true)
	if _, err := r.PublishPending(ctx); err != nil {
		t.Fatal(err)
	}
	commitEvent(t, db, events.NewID(), true) // unpublished: never pruned
	tests := []struct {
		name    string
		advance time.Duration
		pruned  int64
	}{
		{"within retention", 59 * time.Minute, 0},
		{"past retention", 2 * time.Minute, 1},
		{"nothing left to prune", 24 * time.Hour, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now = now.Add(tt.advance)
			n, err := r.Prune(context.Background())
			if err != nil || n != tt.pruned {
				t.Fatalf("Prune = %d, %v; want %d", n, err, tt.pruned)
			}
		})
	}
	if unpublished(t, db) != 1 {
		t.Fatal("the unpublished row was pruned")
	}
}

// TestRelayPrunesTheInboxAfterItsRetention: handled event ids are remembered for
// InboxRetention (past any redelivery), then forgotten; a younger entry stays and still
// makes its event a duplicate.
func TestRelayPrunesTheInboxAfterItsRetention(t *testing.T) {
	e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
	b := connectEmbedded(t, e, events.Config{})
	db := openDB(t)
	now := time.Now()
	r, err := events.NewRelay(db, b, events.RelayConfig{InboxRetention: time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := ctxTimeout(t, 10*time.Second)
	// MarkProcessed stamps with the wall clock: write the two entries with the ages wanted.
	for id, age := range map[string]time.Duration{"old": 61 * time.Minute, "young": 31 * time.Minute} {
		if _, err := db.ExecContext(ctx, `INSERT INTO inbox (consumer, event_id, processed_at) VALUES ('svc', ?, ?)`,
			id, now.Add(-age).UnixNano()); err != nil {
			t.Fatal(err)
		}
	}
	mark := func(id string) bool {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			t.Fatal(err)
		}
		first, err := events.MarkProcessed(ctx, tx, "svc", id)
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		return first
	}
	if n, err := r.PruneInbox(ctx); err != nil || n != 1 {
		t.Fatalf("PruneInbox = %d, %v; want 1 (the old entry)", n, err)
	}
	if mark("young") {
		t.Fatal("the young entry was pruned: its event would take effect twice")
	}
	if !mark("old") {
		t.Fatal("the old entry is still there")
	}
}

func TestNewRelayValidatesConfig(t *testing.T) {
	e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
	b := connectEmbedded(t, e, events.Config{})
	db := openDB(t)
	tests := []struct {
		name string
		cfg  events.RelayConfig
		ok   bool
	}{
		{"zero value is the defaults", events.RelayConfig{}, true},
		{"negative batch", events.RelayConfig{BatchSize: -1}, false},
		{"batch over the maximum", events.RelayConfig{BatchSize: events.MaxBatchSize + 1}, false},
		{"negative poll", events.RelayConfig{PollInterval: -time.Second}, false},
		{"max below min backoff", events.RelayConfig{MinBackoff: time.Second, MaxBackoff: time.Millisecond}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := events.NewRelay(db, b, tt.cfg)
			if (err == nil) != tt.ok {
				t.Fatalf("NewRelay error %v, want ok=%v", err, tt.ok)
			}
			if r != nil {
				_ = r.Close() // never started: Close must still return
			}
		})
	}
}
