package payment

import (
	"context"
	"errors"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
)

// ErrNotFound is returned by a store when the payment does not exist.
var ErrNotFound = errors.New("not found")

// Store is the payment service's storage. SQLStore (SQLite or PostgreSQL) implements it.
type Store interface {
	// Get returns one payment, or ErrNotFound.
	Get(ctx context.Context, id string) (*paymentv1.Payment, error)
	// ListByOrder returns the payments of an order, oldest first.
	ListByOrder(ctx context.Context, orderID string) ([]*paymentv1.Payment, error)
	// Update runs fn in one write transaction, committed when fn returns nil.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the store.
	Close() error
}

// Tx is one write transaction of a Store.
type Tx interface {
	// MarkProcessed records that the payment consumer handled eventID; false if it had.
	MarkProcessed(ctx context.Context, eventID string) (bool, error)
	// Append records an event in the outbox.
	Append(ctx context.Context, env *eventsv1.Envelope) error
	// Payment returns one payment, or ErrNotFound.
	Payment(ctx context.Context, id string) (*paymentv1.Payment, error)
	// PaymentOfOrder returns the payment of an order, or ErrNotFound.
	PaymentOfOrder(ctx context.Context, orderID string) (*paymentv1.Payment, error)
	// Insert stores a new payment.
	Insert(ctx context.Context, p *paymentv1.Payment) error
	// SetStatus updates a payment's status and update time.
	SetStatus(ctx context.Context, p *paymentv1.Payment) error
	// Tombstoned reports whether the order was cancelled before it was charged.
	Tombstoned(ctx context.Context, orderID string) (bool, error)
	// PutTombstone records that the order was cancelled before it was charged.
	PutTombstone(ctx context.Context, orderID, reason string) error
}
