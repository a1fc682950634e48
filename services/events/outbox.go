package events

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/services/storage"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Schema creates the outbox and inbox tables as they were first (OutboxMigration follows it).
// Every service includes both in its SQLite migrations.
const Schema = `
CREATE TABLE IF NOT EXISTS outbox (
	seq          INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id     TEXT    NOT NULL UNIQUE,
	subject      TEXT    NOT NULL,
	envelope     BLOB    NOT NULL,
	created_at   INTEGER NOT NULL,
	published_at INTEGER
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE TABLE IF NOT EXISTS inbox (
	consumer     TEXT    NOT NULL,
	event_id     TEXT    NOT NULL,
	processed_at INTEGER NOT NULL,
	PRIMARY KEY (consumer, event_id)
);
`

// OutboxMigration brings a Schema outbox to what Append and the relay use now: it stores the
// event type (not a NATS subject, so that any broker derives its own destination) and the
// partition key (the order id: the events of one order keep their order on a partitioned
// broker). Every service appends it to its SQLite migrations, after Schema.
const OutboxMigration = `
ALTER TABLE outbox RENAME COLUMN subject TO event_type;
UPDATE outbox SET event_type = substr(event_type, length('` + SubjectPrefix + `') + 1)
	WHERE substr(event_type, 1, length('` + SubjectPrefix + `')) = '` + SubjectPrefix + `';
ALTER TABLE outbox ADD COLUMN partition_key TEXT NOT NULL DEFAULT '';
`

// PostgresSchema creates the outbox and inbox tables on PostgreSQL, as Schema and
// OutboxMigration leave them on SQLite: every service's PostgreSQL migrations start with it.
// seq is an identity column: its values are taken in insert order but become visible in commit
// order, which is why the relay marks exactly the rows it published.
const PostgresSchema = `
CREATE TABLE IF NOT EXISTS outbox (
	seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	event_id      TEXT   NOT NULL UNIQUE,
	event_type    TEXT   NOT NULL,
	partition_key TEXT   NOT NULL DEFAULT '',
	envelope      BYTEA  NOT NULL,
	created_at    BIGINT NOT NULL,
	published_at  BIGINT
);
CREATE INDEX IF NOT EXISTS outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS inbox (
	consumer     TEXT   NOT NULL,
	event_id     TEXT   NOT NULL,
	processed_at BIGINT NOT NULL,
	PRIMARY KEY (consumer, event_id)
);
CREATE INDEX IF NOT EXISTS inbox_processed ON inbox (processed_at);
`

// Execer is what Append and MarkProcessed need of a transaction: a *storage.Tx (which rebinds
// their '?' placeholders for the database's dialect), or a *sql.Tx on SQLite.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// NewID returns a random 128-bit id in hex, for events and resources.
func NewID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("events: reading random bytes: %v", err)) // crypto/rand never fails on Linux
	}
	return hex.EncodeToString(b[:])
}

// NewEnvelope wraps payload in an envelope with a fresh event id, the given time and trace
// context (nil for none; in a handler, TraceContextFrom(ctx): that of the event handled).
// source names the service ("order", "payment", "inventory").
func NewEnvelope(source, orderID string, payload proto.Message, at time.Time, traceContext map[string]string) (*eventsv1.Envelope, error) {
	anyPayload, err := anypb.New(payload)
	if err != nil {
		return nil, fmt.Errorf("wrapping %T: %w", payload, err)
	}
	return &eventsv1.Envelope{
		EventId:      NewID(),
		Type:         string(payload.ProtoReflect().Descriptor().FullName()),
		Time:         timestamppb.New(at),
		OrderId:      orderID,
		TraceContext: traceContext,
		Payload:      anyPayload,
		Source:       source,
	}, nil
}

// Subject is the broker subject of an envelope: "shop.events.<type>", e.g.
// "shop.events.shop.events.v1.OrderCreated".
func Subject(env *eventsv1.Envelope) string { return SubjectPrefix + env.GetType() }

// SubjectPrefix starts every event subject.
const SubjectPrefix = "shop.events."

// Append records env in the outbox inside tx, the transaction of the state change that caused
// it. The relay publishes it after the transaction commits.
func Append(ctx context.Context, tx Execer, env *eventsv1.Envelope) error {
	body, err := proto.Marshal(env)
	if err != nil {
		return fmt.Errorf("encoding event %s: %w", env.GetEventId(), err)
	}
	_, err = tx.ExecContext(ctx,
		`INSERT INTO outbox (event_id, event_type, partition_key, envelope, created_at) VALUES (?, ?, ?, ?, ?)`,
		env.GetEventId(), env.GetType(), env.GetOrderId(), body, time.Now().UnixNano())
	if err != nil {
		return fmt.Errorf("appending event %s to the outbox: %w", env.GetEventId(), err)
	}
	return nil
}

// MarkProcessed records inside tx that consumer handled eventID. It reports false when the
// event had been handled already: the caller then rolls back and acknowledges, changing nothing.
func MarkProcessed(ctx context.Context, tx Execer, consumer, eventID string) (first bool, err error) {
	res, err := tx.ExecContext(ctx,
		`INSERT INTO inbox (consumer, event_id, processed_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING`,
		consumer, eventID, time.Now().UnixNano())
	if err != nil {
		return false, fmt.Errorf("recording event %s for %s: %w", eventID, consumer, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("recording event %s for %s: %w", eventID, consumer, err)
	}
	return n == 1, nil
}

type outboxRow struct {
	seq       int64
	eventID   string
	eventType string
	key       string
	body      []byte
}

// claim makes the relay round exclusive among the relays of one outbox (several replicas of a
// service on one database) and returns what ends the claim. ok is false when another relay holds
// it: this round publishes nothing. On SQLite, whose writers are serialised, every round may run.
//
// On PostgreSQL the claim is a session advisory lock keyed by the outbox's schema and the
// relay's name, taken without waiting (pg_try_advisory_lock) on a connection held for the round
// and released after it; if the process dies, its session ends and the lock with it. A relay
// that finds the lock held wakes itself again after MinBackoff, so that a row its own replica
// just committed does not wait for the next poll when the holder has finished its round.
func (r *Relay) claim(ctx context.Context) (release func(), ok bool, err error) {
	if r.cfg.Dialect != storage.Postgres {
		return func() {}, true, nil
	}
	conn, err := r.db.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("claiming the outbox: %w", err)
	}
	if err := conn.QueryRowContext(ctx, `SELECT pg_try_advisory_lock(`+relayLockKey+`)`, r.cfg.Name).Scan(&ok); err != nil {
		_ = conn.Close()
		return nil, false, fmt.Errorf("claiming the outbox: %w", err)
	}
	if !ok {
		_ = conn.Close()
		time.AfterFunc(r.cfg.MinBackoff, r.Notify)
		return nil, false, nil
	}
	return func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		var unlocked bool
		if err := conn.QueryRowContext(ctx, `SELECT pg_advisory_unlock(`+relayLockKey+`)`, r.cfg.Name).Scan(&unlocked); err != nil || !unlocked {
			// Never give a session that may still hold the lock back to the pool: closing it
			// releases the lock.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
		_ = conn.Close()
	}, true, nil
}

// relayLockKey is the advisory lock key of a relay: its name ($1) in the outbox's schema.
const relayLockKey = `hashtextextended('shopgate.relay:' || current_schema() || ':' || $1, 0)`

// markPublished marks exactly rows as published, by their seq. Not the range from the first
// to the last: under concurrent writers a row can commit inside that range after the read
// (a lower seq committing later), and marking the range would mark it without its having
// been sent, a lost event.
func (r *Relay) markPublished(ctx context.Context, rows []outboxRow) error {
	var q strings.Builder
	q.WriteString(`UPDATE outbox SET published_at = ? WHERE published_at IS NULL AND seq IN (`)
	args := make([]any, 0, len(rows)+1)
	args = append(args, r.cfg.Now().UnixNano())
	for i, row := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('?')
		args = append(args, row.seq)
	}
	q.WriteByte(')')
	if _, err := r.db.ExecContext(ctx, r.cfg.Dialect.Rebind(q.String()), args...); err != nil {
		return fmt.Errorf("marking %d outbox rows published: %w", len(rows), err)
	}
	return nil
}

func (r *Relay) pending(ctx context.Context) ([]outboxRow, error) {
	rows, err := r.db.QueryContext(ctx,
		r.cfg.Dialect.Rebind(`SELECT seq, event_id, event_type, partition_key, envelope FROM outbox
			WHERE published_at IS NULL ORDER BY seq LIMIT ?`),
		r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var row outboxRow
		if err := rows.Scan(&row.seq, &row.eventID, &row.eventType, &row.key, &row.body); err != nil {
			return nil, fmt.Errorf("reading the outbox: %w", err)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	return out, nil
}

// Prune deletes the rows published longer than Retention ago and reports how many.
func (r *Relay) Prune(ctx context.Context) (int64, error) {
	res, err := r.db.ExecContext(ctx, r.cfg.Dialect.Rebind(`DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < ?`),
		r.cfg.Now().Add(-r.cfg.Retention).UnixNano())
	if err != nil {
		return 0, fmt.Errorf("pruning the outbox: %w", err)
	}
	return res.RowsAffected()
}

// PruneInbox deletes the inbox entries of events handled longer than InboxRetention ago, which
// no redelivery can bring back any more, and reports how many.
func (r *Relay) PruneInbox(ctx context.Context) (int64, error) {
	res, err := r.db.ExecContext(ctx, r.cfg.Dialect.Rebind(`DELETE FROM inbox WHERE processed_at < ?`), r.cfg.Now().Add(-r.cfg.InboxRetention).UnixNano())
	if err != nil {
		return 0, fmt.Errorf("pruning the inbox: %w", err)
	}
	return res.RowsAffected()
}
