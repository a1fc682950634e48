package inventory

import (
	"context"
	"errors"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
)

// ErrNotFound is returned by a store when the item or reservation does not exist.
var ErrNotFound = errors.New("not found")

// ErrInsufficientStock is returned by Tx.Move when a change would make stock negative.
var ErrInsufficientStock = errors.New("insufficient stock")

// Reservation states.
const (
	StateReserved  = "reserved"  // units held: available -> reserved
	StateRejected  = "rejected"  // nothing held: some line could not be served
	StateCommitted = "committed" // units taken out of stock for good
	StateReleased  = "released"  // units given back to available
	StateTombstone = "tombstone" // order cancelled before it was seen: never reserve it
)

// Line is one SKU and quantity of a reservation.
type Line struct {
	SKU      string
	Quantity int32
}

// Reservation is what inventory did for one order.
type Reservation struct {
	OrderID string
	State   string
	Reason  string
	Lines   []Line
}

// Store is the inventory's storage. SQLStore (SQLite or PostgreSQL) implements it.
type Store interface {
	// GetItem returns one item, or ErrNotFound.
	GetItem(ctx context.Context, sku string) (*inventoryv1.Item, error)
	// ListItems returns up to limit items with a SKU greater than after, in SKU order.
	ListItems(ctx context.Context, after string, limit int) ([]*inventoryv1.Item, error)
	// Update runs fn in one write transaction, committed when fn returns nil.
	Update(ctx context.Context, fn func(Tx) error) error
	// Close releases the store.
	Close() error
}

// Tx is one write transaction of a Store.
type Tx interface {
	// MarkProcessed records that the inventory consumer handled eventID; false if it had.
	MarkProcessed(ctx context.Context, eventID string) (bool, error)
	// Append records an event in the outbox.
	Append(ctx context.Context, env *eventsv1.Envelope) error
	// Item returns one item, or ErrNotFound.
	Item(ctx context.Context, sku string) (*inventoryv1.Item, error)
	// AddItem creates the item unless its SKU exists, which it leaves as it is.
	AddItem(ctx context.Context, item *inventoryv1.Item) error
	// PutItem creates the item or replaces its name, price, currency and available units;
	// reserved units are kept as they are.
	PutItem(ctx context.Context, item *inventoryv1.Item) error
	// Move adds the deltas to an item's available and reserved units; ErrInsufficientStock if
	// either would go negative, ErrNotFound if the item does not exist.
	Move(ctx context.Context, sku string, available, reserved int32) error
	// Reservation returns the reservation of an order, or ErrNotFound.
	Reservation(ctx context.Context, orderID string) (Reservation, error)
	// PutReservation creates a reservation with its lines, or updates the state and reason of
	// an existing one.
	PutReservation(ctx context.Context, r Reservation) error
}
