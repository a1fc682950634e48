package events

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Schema creates the outbox and inbox tables. Every service includes it in its migrations.
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

// Execer is what Append and MarkProcessed need of a transaction (*sql.Tx).
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
		`INSERT INTO outbox (event_id, subject, envelope, created_at) VALUES (?, ?, ?, ?)`,
		env.GetEventId(), Subject(env), body, time.Now().UnixNano())
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
