package events_test

import (
	"database/sql"
	"path/filepath"
	"testing"

	"github.com/acme/shopgate/services/events"
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
