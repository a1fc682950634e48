package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/storage"
)

// Migrations is the inventory database schema, one script per version in each dialect.
var Migrations = storage.Migrations{
	SQLite: []string{
		events.Schema + `
CREATE TABLE items (
	sku         TEXT    PRIMARY KEY,
	name        TEXT    NOT NULL,
	price_cents INTEGER NOT NULL CHECK (price_cents >= 0),
	currency    TEXT    NOT NULL,
	available   INTEGER NOT NULL CHECK (available >= 0),
	reserved    INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0)
);
CREATE TABLE reservations (
	order_id   TEXT    PRIMARY KEY,
	state      TEXT    NOT NULL CHECK (state IN ('reserved', 'rejected', 'committed', 'released', 'tombstone')),
	reason     TEXT    NOT NULL DEFAULT '',
	updated_at INTEGER NOT NULL
);
CREATE TABLE reservation_lines (
	order_id TEXT    NOT NULL REFERENCES reservations (order_id),
	sku      TEXT    NOT NULL REFERENCES items (sku),
	quantity INTEGER NOT NULL CHECK (quantity > 0),
	PRIMARY KEY (order_id, sku)
);
`,
		// Version 2: the outbox stores the event type and the partition key.
		events.OutboxMigration,
	},
	// SKUs and order ids compare bytewise (COLLATE "C"), as on SQLite: the item list's order
	// and its page tokens do not depend on the server's locale.
	Postgres: []string{
		events.PostgresSchema + `
CREATE TABLE items (
	sku         TEXT    COLLATE "C" PRIMARY KEY,
	name        TEXT    NOT NULL,
	price_cents BIGINT  NOT NULL CHECK (price_cents >= 0),
	currency    TEXT    NOT NULL,
	available   INTEGER NOT NULL CHECK (available >= 0),
	reserved    INTEGER NOT NULL DEFAULT 0 CHECK (reserved >= 0)
);
CREATE TABLE reservations (
	order_id   TEXT   COLLATE "C" PRIMARY KEY,
	state      TEXT   NOT NULL CHECK (state IN ('reserved', 'rejected', 'committed', 'released', 'tombstone')),
	reason     TEXT   NOT NULL DEFAULT '',
	updated_at BIGINT NOT NULL
);
CREATE TABLE reservation_lines (
	order_id TEXT    COLLATE "C" NOT NULL REFERENCES reservations (order_id),
	sku      TEXT    COLLATE "C" NOT NULL REFERENCES items (sku),
	quantity INTEGER NOT NULL CHECK (quantity > 0),
	PRIMARY KEY (order_id, sku)
);
`,
	},
}

// SQLStore is the Store on a SQL database: an embedded SQLite file or PostgreSQL (storage).
type SQLStore struct {
	db *storage.DB
}

// Open opens (creating and migrating) the inventory database of src: PostgreSQL when src.URL is
// set, else the SQLite file src.Path.
func Open(ctx context.Context, src storage.Source) (*SQLStore, error) {
	db, err := storage.OpenSource(ctx, src, Migrations, storage.Config{})
	if err != nil {
		return nil, fmt.Errorf("opening inventory store: %w", err)
	}
	return &SQLStore{db: db}, nil
}

// OpenSQLite opens (creating and migrating) the inventory database at path.
func OpenSQLite(path string) (*SQLStore, error) {
	return Open(context.Background(), storage.Source{Path: path})
}

// DB returns the database's write handle, for the events relay (the outbox table).
func (s *SQLStore) DB() *sql.DB { return s.db.Write }

// Dialect returns the database's dialect, for the events relay.
func (s *SQLStore) Dialect() storage.Dialect { return s.db.Dialect }

// Close closes the database.
func (s *SQLStore) Close() error { return s.db.Close() }

const itemColumns = `sku, name, price_cents, currency, available, reserved`

func scanItem(row storage.Scanner) (*inventoryv1.Item, error) {
	it := &inventoryv1.Item{}
	if err := row.Scan(&it.Sku, &it.Name, &it.PriceCents, &it.Currency, &it.Available, &it.Reserved); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNotFound
		}
		return nil, err
	}
	return it, nil
}

// GetItem implements Store.
func (s *SQLStore) GetItem(ctx context.Context, sku string) (*inventoryv1.Item, error) {
	return scanItem(s.db.Reader().QueryRowContext(ctx, `SELECT `+itemColumns+` FROM items WHERE sku = ?`, sku))
}

// ListItems implements Store.
func (s *SQLStore) ListItems(ctx context.Context, after string, limit int) ([]*inventoryv1.Item, error) {
	return storage.QueryAll(ctx, s.db.Reader(), scanItem, `SELECT `+itemColumns+` FROM items WHERE sku > ? ORDER BY sku LIMIT ?`, after, limit)
}

// Update implements Store.
func (s *SQLStore) Update(ctx context.Context, fn func(Tx) error) error {
	return s.db.InTx(ctx, func(tx *storage.Tx) error { return fn(sqlTx{tx}) })
}

type sqlTx struct{ tx *storage.Tx }

func (t sqlTx) MarkProcessed(ctx context.Context, eventID string) (bool, error) {
	return events.MarkProcessed(ctx, t.tx, Consumer, eventID)
}

func (t sqlTx) Append(ctx context.Context, env *eventsv1.Envelope) error {
	return events.Append(ctx, t.tx, env)
}

// Item locks the item's row (PostgreSQL: FOR UPDATE) until the transaction ends, so that the
// stock this transaction checked is the stock it moves.
func (t sqlTx) Item(ctx context.Context, sku string) (*inventoryv1.Item, error) {
	return scanItem(t.tx.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM items WHERE sku = ?`+t.tx.Dialect().ForUpdate(), sku))
}

func (t sqlTx) PutItem(ctx context.Context, it *inventoryv1.Item) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO items (sku, name, price_cents, currency, available, reserved)
		VALUES (?, ?, ?, ?, ?, 0)
		ON CONFLICT (sku) DO UPDATE SET name = excluded.name, price_cents = excluded.price_cents,
			currency = excluded.currency, available = excluded.available`,
		it.GetSku(), it.GetName(), it.GetPriceCents(), it.GetCurrency(), it.GetAvailable())
	return err
}

func (t sqlTx) AddItem(ctx context.Context, it *inventoryv1.Item) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO items (sku, name, price_cents, currency, available, reserved)
		VALUES (?, ?, ?, ?, ?, 0) ON CONFLICT (sku) DO NOTHING`,
		it.GetSku(), it.GetName(), it.GetPriceCents(), it.GetCurrency(), it.GetAvailable())
	return err
}

func (t sqlTx) Move(ctx context.Context, sku string, available, reserved int32) error {
	res, err := t.tx.ExecContext(ctx, `UPDATE items SET available = available + ?, reserved = reserved + ?
		WHERE sku = ? AND available + ? >= 0 AND reserved + ? >= 0`, available, reserved, sku, available, reserved)
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 1 {
		return nil
	}
	if _, err := t.Item(ctx, sku); err != nil {
		return err
	}
	return ErrInsufficientStock
}

// Reservation locks the order's reservation (storage.Tx.Lock) until the transaction ends,
// whether it exists or not: OrderCreated and OrderCancelled of one order handled at once by two
// replicas run one after the other, and the second sees the reservation or tombstone of the
// first.
func (t sqlTx) Reservation(ctx context.Context, orderID string) (Reservation, error) {
	r := Reservation{OrderID: orderID}
	if err := t.tx.Lock(ctx, "inventory.reservation:"+orderID); err != nil {
		return r, err
	}
	err := t.tx.QueryRowContext(ctx, `SELECT state, reason FROM reservations WHERE order_id = ?`, orderID).Scan(&r.State, &r.Reason)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, err
	}
	r.Lines, err = storage.QueryAll(ctx, t.tx, func(row storage.Scanner) (Line, error) {
		var l Line
		return l, row.Scan(&l.SKU, &l.Quantity)
	}, `SELECT sku, quantity FROM reservation_lines WHERE order_id = ? ORDER BY sku`, orderID)
	return r, err
}

func (t sqlTx) PutReservation(ctx context.Context, r Reservation) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO reservations (order_id, state, reason, updated_at) VALUES (?, ?, ?, ?)
		ON CONFLICT (order_id) DO UPDATE SET state = excluded.state, reason = excluded.reason, updated_at = excluded.updated_at`,
		r.OrderID, r.State, r.Reason, time.Now().UnixNano())
	if err != nil {
		return err
	}
	for _, l := range r.Lines {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO reservation_lines (order_id, sku, quantity) VALUES (?, ?, ?)
			ON CONFLICT DO NOTHING`, r.OrderID, l.SKU, l.Quantity); err != nil {
			return err
		}
	}
	return nil
}
