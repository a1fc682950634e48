package order

import (
	"context"
	"errors"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
)

// ErrNotFound is returned by a store when the order or key does not exist.
var ErrNotFound = errors.New("not found")

// Record is a stored order and the saga's progress on it.
type Record struct {
	Order *orderv1.Order
	// StockReserved is set once inventory reported StockReserved.
	StockReserved bool
	// PaymentCaptured is set once payment reported PaymentCaptured.
	PaymentCaptured bool
}

// IdempotencyRecord is one stored Idempotency-Key of a customer.
type IdempotencyRecord struct {
	CustomerID  string
	Key         string
	RequestHash []byte
	OrderID     string
	ExpiresAt   time.Time
}

// Cursor is a position in the newest-first order list: orders strictly older than it follow.
type Cursor struct {
	CreateTime int64 // unix nanoseconds
	ID         string
}

// Store is the order service's storage. SQLStore (SQLite or PostgreSQL) implements it.
type Store interface {
	// Get returns one order, or ErrNotFound.
	Get(ctx context.Context, id string) (*orderv1.Order, error)
	// List returns up to limit orders after cursor (nil: from the newest), newest first; only
	// customerID's when it is not empty.
	List(ctx context.Context, customerID string, after *Cursor, limit int) ([]*orderv1.Order, error)
	// Idempotency returns the key record of a customer, or ErrNotFound.
	Idempotency(ctx context.Context, customerID, key string) (IdempotencyRecord, error)
	// Update runs fn in one write transaction, committed when fn returns nil.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the store.
	Close() error
}

// Tx is one write transaction of a Store.
type Tx interface {
	// MarkProcessed records that the order consumer handled eventID; false if it had.
	MarkProcessed(ctx context.Context, eventID string) (bool, error)
	// Append records an event in the outbox.
	Append(ctx context.Context, env *eventsv1.Envelope) error
	// Record returns an order with its saga progress, or ErrNotFound.
	Record(ctx context.Context, id string) (Record, error)
	// Insert stores a new order and its items.
	Insert(ctx context.Context, o *orderv1.Order) error
	// Save updates the status, reason, payment id, update time and progress of an order.
	Save(ctx context.Context, r Record) error
	// Idempotency returns the key record of a customer, or ErrNotFound.
	Idempotency(ctx context.Context, customerID, key string) (IdempotencyRecord, error)
	// PutIdempotency stores a key record, replacing an expired one of the same key.
	PutIdempotency(ctx context.Context, r IdempotencyRecord) error
	// PurgeIdempotency deletes the key records that expired before now.
	PurgeIdempotency(ctx context.Context, now time.Time) error
}
