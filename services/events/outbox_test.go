package events_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/internal/testpg"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/storage"
)

// An outbox written before OutboxMigration (NATS subjects, no partition key) keeps its
// unpublished rows through the migration, each with its event type.
func TestOutboxMigrationKeepsPendingRows(t *testing.T) {
	db, err := sql.Open("sqlite", "file:"+filepath.Join(t.TempDir(), "old.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(events.Schema); err != nil {
		t.Fatal(err)
	}
	for i, subject := range []string{"shop.events.shop.events.v1.OrderCreated", "other.prefix.X"} {
		if _, err := db.Exec(`INSERT INTO outbox (event_id, subject, envelope, created_at) VALUES (?, ?, ?, 1)`,
			string(rune('a'+i)), subject, []byte{1}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(events.OutboxMigration); err != nil {
		t.Fatalf("migrating: %v", err)
	}
	want := map[string]string{"a": "shop.events.v1.OrderCreated", "b": "other.prefix.X"}
	rows, err := db.Query(`SELECT event_id, event_type, partition_key FROM outbox WHERE published_at IS NULL`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id, typ, key string
		if err := rows.Scan(&id, &typ, &key); err != nil {
			t.Fatal(err)
		}
		if typ != want[id] || key != "" {
			t.Errorf("row %s: type %q key %q, want %q and no key", id, typ, key, want[id])
		}
		n++
	}
	if err := rows.Err(); err != nil || n != 2 {
		t.Fatalf("%d rows (%v), want 2", n, err)
	}
}

// pgOutbox opens n handles (replicas) on one fresh PostgreSQL schema holding PostgresSchema.
func pgOutbox(t *testing.T, n int) []*storage.DB {
	t.Helper()
	src := storage.Source{URL: testpg.Schema(t, t.Name())}
	dbs := make([]*storage.DB, n)
	for i := range dbs {
		db, err := storage.OpenSource(context.Background(), src, storage.Migrations{Postgres: []string{events.PostgresSchema}}, storage.Config{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		dbs[i] = db
	}
	return dbs
}

// pgAppend commits one event about key through db.
func pgAppend(t testing.TB, db *storage.DB, key string) string {
	env, err := events.NewEnvelope("order", key, &eventsv1.OrderCreated{OrderId: key}, time.Now(), nil)
	if err != nil {
		t.Error(err)
		return ""
	}
	if err := db.InTx(context.Background(), func(tx *storage.Tx) error { return events.Append(context.Background(), tx, env) }); err != nil {
		t.Error(err)
		return ""
	}
	return env.GetEventId()
}

// recordingBroker passes each publish to a real broker and records what was published, and
// whether two publishes ever overlapped (two relays publishing at once).
type recordingBroker struct {
	events.Broker
	mu        sync.Mutex
	inFlight  int
	overlaps  int
	published []events.Message
}

func (b *recordingBroker) Publish(ctx context.Context, msg events.Message) error {
	b.mu.Lock()
	b.inFlight++
	if b.inFlight > 1 {
		b.overlaps++
	}
	b.mu.Unlock()
	err := b.Broker.Publish(ctx, msg)
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inFlight--
	if err == nil {
		b.published = append(b.published, msg)
	}
	return err
}

func (b *recordingBroker) snapshot() (published []events.Message, overlaps int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.published), b.overlaps
}

func embeddedBroker(t *testing.T) events.Broker {
	t.Helper()
	e, err := events.StartEmbedded(t.TempDir(), events.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := e.Connect(ctx, events.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

// Two replicas of a service, each with its relay, on one PostgreSQL outbox, while writers on
// both append events concurrently: every event is published exactly once, those of one key in
// the order they were written, the two relays never publish at the same time, and nothing is
// left unpublished.
func TestPostgresRelaysPublishEveryEventOnceInOrder(t *testing.T) {
	dbs := pgOutbox(t, 2)
	b := &recordingBroker{Broker: embeddedBroker(t)}
	var relays []*events.Relay
	for _, db := range dbs {
		r, err := events.NewRelay(db.Write, b, events.RelayConfig{Name: "order", Dialect: db.Dialect,
			BatchSize: 7, PollInterval: 20 * time.Millisecond, MinBackoff: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		r.Start()
		defer r.Close()
		relays = append(relays, r)
	}
	const keys, perKey = 8, 25
	want := make(map[string][]string, keys) // key -> event ids in write order
	var mu sync.Mutex
	var wg sync.WaitGroup
	for k := range keys {
		key := fmt.Sprintf("order-%d", k)
		wg.Go(func() {
			for i := range perKey {
				id := pgAppend(t, dbs[(k+i)%2], key)
				relays[(k+i)%2].Notify()
				mu.Lock()
				want[key] = append(want[key], id)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got, _ := b.snapshot()
		if len(got) >= keys*perKey || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for _, r := range relays {
		_ = r.Close()
	}
	got, overlaps := b.snapshot()
	if overlaps > 0 {
		t.Errorf("the two relays published at the same time %d times", overlaps)
	}
	seen := map[string]int{}
	gotByKey := map[string][]string{}
	for _, m := range got {
		seen[m.ID]++
		gotByKey[m.Key] = append(gotByKey[m.Key], m.ID)
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("event %s published %d times", id, n)
		}
	}
	for key, ids := range want {
		if !slices.Equal(gotByKey[key], ids) {
			t.Errorf("key %s: published %v, want %v", key, gotByKey[key], ids)
		}
	}
	var left int
	if err := dbs[0].Read.QueryRow(`SELECT COUNT(*) FROM outbox WHERE published_at IS NULL`).Scan(&left); err != nil || left != 0 {
		t.Errorf("%d rows left unpublished (%v)", left, err)
	}
	if len(got) != keys*perKey {
		t.Fatalf("published %d events, want %d", len(got), keys*perKey)
	}
}

// A relay whose claim another session holds publishes nothing, at once; it publishes once the
// holder releases the claim, or once the holder's session ends (a replica that died).
func TestPostgresRelayClaim(t *testing.T) {
	dbs := pgOutbox(t, 3)
	b := &recordingBroker{Broker: embeddedBroker(t)}
	r, err := events.NewRelay(dbs[0].Write, b, events.RelayConfig{Name: "order", Dialect: storage.Postgres})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	// holdClaim takes the relay "order"'s claim on a session of db, as another replica's relay
	// in its round would.
	holdClaim := func(db *storage.DB) *sql.Conn {
		conn, err := db.Write.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtextextended('shopgate.relay:' || current_schema() || ':' || $1, 0))`, "order"); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	tests := []struct {
		name string
		end  func(*sql.Conn) // ends the other replica's claim
	}{
		{"released by its holder", func(c *sql.Conn) {
			if _, err := c.ExecContext(ctx, `SELECT pg_advisory_unlock_all()`); err != nil {
				t.Fatal(err)
			}
			_ = c.Close()
		}},
		{"held by a replica that dies", func(c *sql.Conn) {
			_ = c.Close()
			_ = dbs[2].Close() // the session ends, the lock with it
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			holder := dbs[1]
			if tc.name == "held by a replica that dies" {
				holder = dbs[2]
			}
			conn := holdClaim(holder)
			id := pgAppend(t, dbs[0], "order-claim")
			start := time.Now()
			if n, err := r.PublishPending(ctx); err != nil || n != 0 {
				t.Fatalf("with the claim held elsewhere: published %d, %v; want 0, nil", n, err)
			}
			if d := time.Since(start); d > time.Second {
				t.Fatalf("a held claim took %v to give up", d)
			}
			tc.end(conn)
			// The server ends a closed session's backend, and frees its locks, a moment later.
			n, err := r.PublishPending(ctx)
			for deadline := time.Now().Add(5 * time.Second); err == nil && n == 0 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
				n, err = r.PublishPending(ctx)
			}
			if err != nil || n != 1 {
				t.Fatalf("after the claim ended: published %d, %v; want 1", n, err)
			}
			if got, _ := b.snapshot(); got[len(got)-1].ID != id {
				t.Fatalf("published %s last, want %s", got[len(got)-1].ID, id)
			}
		})
	}
}

// On PostgreSQL a lower seq can commit after a higher one has been read and published: the
// relay does not mark it with that batch, and publishes it in the next round.
func TestPostgresRelayPublishesALowerSeqCommittedLate(t *testing.T) {
	db := pgOutbox(t, 1)[0]
	b := &recordingBroker{Broker: embeddedBroker(t)}
	r, err := events.NewRelay(db.Write, b, events.RelayConfig{Name: "order", Dialect: db.Dialect})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	late, err := events.NewEnvelope("order", "k", &eventsv1.OrderCreated{OrderId: "k"}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	appended, commit, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() {
		done <- db.InTx(ctx, func(tx *storage.Tx) error {
			if err := events.Append(ctx, tx, late); err != nil {
				return err
			}
			close(appended)
			<-commit
			return nil
		})
	}()
	<-appended
	early := pgAppend(t, db, "k2") // a higher seq, committed first
	var lateSeq, earlySeq int64
	if err := db.Read.QueryRow(`SELECT seq FROM outbox WHERE event_id = $1`, early).Scan(&earlySeq); err != nil {
		t.Fatal(err)
	}
	if n, err := r.PublishPending(ctx); err != nil || n != 1 {
		t.Fatalf("first round: %d, %v; want the committed row", n, err)
	}
	close(commit)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := db.Read.QueryRow(`SELECT seq FROM outbox WHERE event_id = $1`, late.GetEventId()).Scan(&lateSeq); err != nil || lateSeq >= earlySeq {
		t.Fatalf("late row seq %d (%v), want below %d", lateSeq, err, earlySeq)
	}
	if n, err := r.PublishPending(ctx); err != nil || n != 1 {
		t.Fatalf("second round: %d, %v; want the late row", n, err)
	}
	got, _ := b.snapshot()
	if len(got) != 2 || got[0].ID != early || got[1].ID != late.GetEventId() {
		t.Fatalf("published %v, want %s then %s", got, early, late.GetEventId())
	}
}
