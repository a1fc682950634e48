package order

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/storage"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Migrations is the order database schema, one script per version in each dialect.
var Migrations = storage.Migrations{
	SQLite: []string{
		events.Schema + `
CREATE TABLE orders (
	id               TEXT    PRIMARY KEY,
	customer_id      TEXT    NOT NULL,
	currency         TEXT    NOT NULL,
	total_cents      INTEGER NOT NULL CHECK (total_cents >= 0),
	status           INTEGER NOT NULL CHECK (status IN (1, 2, 3)),
	status_reason    TEXT    NOT NULL DEFAULT '',
	payment_id       TEXT    NOT NULL DEFAULT '',
	payment_method   TEXT    NOT NULL,
	stock_reserved   INTEGER NOT NULL DEFAULT 0,
	payment_captured INTEGER NOT NULL DEFAULT 0,
	create_time      INTEGER NOT NULL,
	update_time      INTEGER NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer_id, create_time DESC, id DESC);
CREATE INDEX orders_by_time ON orders (create_time DESC, id DESC);
CREATE TABLE order_items (
	order_id         TEXT    NOT NULL REFERENCES orders (id),
	line             INTEGER NOT NULL,
	sku              TEXT    NOT NULL,
	quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
	unit_price_cents INTEGER NOT NULL CHECK (unit_price_cents >= 0),
	PRIMARY KEY (order_id, line)
);
CREATE TABLE idempotency_keys (
	customer_id  TEXT    NOT NULL,
	key          TEXT    NOT NULL,
	request_hash BLOB    NOT NULL,
	order_id     TEXT    NOT NULL REFERENCES orders (id),
	expires_at   INTEGER NOT NULL,
	PRIMARY KEY (customer_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
`,
		// Version 2: the pending orders, for the orders_pending gauges (Pending) at each scrape.
		`CREATE INDEX orders_pending ON orders (create_time) WHERE status = 1;`,
		// Version 3: the outbox stores the event type and the partition key.
		events.OutboxMigration,
	},
	// Text keys compare bytewise (COLLATE "C"), as on SQLite: the list order and its cursors
	// do not depend on the server's locale.
	Postgres: []string{
		events.PostgresSchema + `
CREATE TABLE orders (
	id               TEXT    COLLATE "C" PRIMARY KEY,
	customer_id      TEXT    COLLATE "C" NOT NULL,
	currency         TEXT    NOT NULL,
	total_cents      BIGINT  NOT NULL CHECK (total_cents >= 0),
	status           INTEGER NOT NULL CHECK (status IN (1, 2, 3)),
	status_reason    TEXT    NOT NULL DEFAULT '',
	payment_id       TEXT    NOT NULL DEFAULT '',
	payment_method   TEXT    NOT NULL,
	stock_reserved   BOOLEAN NOT NULL DEFAULT FALSE,
	payment_captured BOOLEAN NOT NULL DEFAULT FALSE,
	create_time      BIGINT  NOT NULL,
	update_time      BIGINT  NOT NULL
);
CREATE INDEX orders_by_customer ON orders (customer_id, create_time DESC, id DESC);
CREATE INDEX orders_by_time ON orders (create_time DESC, id DESC);
CREATE INDEX orders_pending ON orders (create_time) WHERE status = 1;
CREATE TABLE order_items (
	order_id         TEXT    COLLATE "C" NOT NULL REFERENCES orders (id),
	line             INTEGER NOT NULL,
	sku              TEXT    NOT NULL,
	quantity         INTEGER NOT NULL CHECK (quantity BETWEEN 1 AND 1000),
	unit_price_cents BIGINT  NOT NULL CHECK (unit_price_cents >= 0),
	PRIMARY KEY (order_id, line)
);
CREATE TABLE idempotency_keys (
	customer_id  TEXT   COLLATE "C" NOT NULL,
	key          TEXT   COLLATE "C" NOT NULL,
	request_hash BYTEA  NOT NULL,
	order_id     TEXT   COLLATE "C" NOT NULL REFERENCES orders (id),
	expires_at   BIGINT NOT NULL,
	PRIMARY KEY (customer_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
`,
	},
}

// SQLStore is the Store on a SQL database: an embedded SQLite file or PostgreSQL (storage).
type SQLStore struct {
	db *storage.DB
}

// Open opens (creating and migrating) the order database of src: PostgreSQL when src.URL is
// set, else the SQLite file src.Path.
func Open(ctx context.Context, src storage.Source) (*SQLStore, error) {
	db, err := storage.OpenSource(ctx, src, Migrations, storage.Config{})
	if err != nil {
		return nil, fmt.Errorf("opening order store: %w", err)
	}
	return &SQLStore{db: db}, nil
}

// OpenSQLite opens (creating and migrating) the order database at path.
func OpenSQLite(path string) (*SQLStore, error) {
	return Open(context.Background(), storage.Source{Path: path})
}

// DB returns the database's write handle, for the events relay (the outbox table).
func (s *SQLStore) DB() *sql.DB { return s.db.Write }

// Dialect returns the database's dialect, for the events relay.
func (s *SQLStore) Dialect() storage.Dialect { return s.db.Dialect }

// Close closes the database.
func (s *SQLStore) Close() error { return s.db.Close() }

const orderColumns = `id, customer_id, currency, total_cents, status, status_reason, payment_id,
	payment_method, stock_reserved, payment_captured, create_time, update_time`

func scanRecord(row storage.Scanner) (Record, error) {
	o := &orderv1.Order{}
	var status int32
	var created, updated int64
	var r Record
	err := row.Scan(&o.Id, &o.CustomerId, &o.Currency, &o.TotalCents, &status, &o.StatusReason, &o.PaymentId,
		&o.PaymentMethod, &r.StockReserved, &r.PaymentCaptured, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	if err != nil {
		return r, err
	}
	o.Status = orderv1.OrderStatus(status)
	o.CreateTime = timestamppb.New(time.Unix(0, created))
	o.UpdateTime = timestamppb.New(time.Unix(0, updated))
	r.Order = o
	return r, nil
}

// loadItems fills the items of orders with one query.
func loadItems(ctx context.Context, q storage.Querier, orders ...*orderv1.Order) error {
	if len(orders) == 0 {
		return nil
	}
	byID := make(map[string]*orderv1.Order, len(orders))
	args := make([]any, 0, len(orders))
	for _, o := range orders {
		byID[o.GetId()] = o
		args = append(args, o.GetId())
	}
	query := `SELECT order_id, sku, quantity, unit_price_cents FROM order_items WHERE order_id IN (?` +
		strings.Repeat(", ?", len(orders)-1) + `) ORDER BY order_id, line`
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var id string
		it := &orderv1.OrderItem{}
		if err := rows.Scan(&id, &it.Sku, &it.Quantity, &it.UnitPriceCents); err != nil {
			return err
		}
		if o := byID[id]; o != nil {
			o.Items = append(o.Items, it)
		}
	}
	return rows.Err()
}

// getRecord reads an order and its items; suffix ends the order's SELECT (a FOR UPDATE clause
// in a write transaction).
func getRecord(ctx context.Context, q storage.Querier, id, suffix string) (Record, error) {
	r, err := scanRecord(q.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = ?`+suffix, id))
	if err != nil {
		return r, err
	}
	return r, loadItems(ctx, q, r.Order)
}

// Get implements Store.
func (s *SQLStore) Get(ctx context.Context, id string) (*orderv1.Order, error) {
	r, err := getRecord(ctx, s.db.Reader(), id, "")
	return r.Order, err
}

// List implements Store.
func (s *SQLStore) List(ctx context.Context, customerID string, after *Cursor, limit int) ([]*orderv1.Order, error) {
	q := `SELECT ` + orderColumns + ` FROM orders WHERE 1 = 1`
	var args []any
	if customerID != "" {
		q += ` AND customer_id = ?`
		args = append(args, customerID)
	}
	if after != nil {
		q += ` AND (create_time < ? OR (create_time = ? AND id < ?))`
		args = append(args, after.CreateTime, after.CreateTime, after.ID)
	}
	q += ` ORDER BY create_time DESC, id DESC LIMIT ?`
	args = append(args, limit)
	out, err := storage.QueryAll(ctx, s.db.Reader(), func(row storage.Scanner) (*orderv1.Order, error) {
		r, err := scanRecord(row)
		return r.Order, err
	}, q, args...)
	if err != nil {
		return nil, err
	}
	return out, loadItems(ctx, s.db.Reader(), out...) // after the rows are closed: one read connection at a time
}

func getIdempotency(ctx context.Context, q storage.Querier, customerID, key string) (IdempotencyRecord, error) {
	r := IdempotencyRecord{CustomerID: customerID, Key: key}
	var exp int64
	err := q.QueryRowContext(ctx, `SELECT request_hash, order_id, expires_at FROM idempotency_keys WHERE customer_id = ? AND key = ?`,
		customerID, key).Scan(&r.RequestHash, &r.OrderID, &exp)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrNotFound
	}
	r.ExpiresAt = time.Unix(0, exp)
	return r, err
}

// Idempotency implements Store.
func (s *SQLStore) Idempotency(ctx context.Context, customerID, key string) (IdempotencyRecord, error) {
	return getIdempotency(ctx, s.db.Reader(), customerID, key)
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

// Record locks the order's row (PostgreSQL: FOR UPDATE) until the transaction ends: a
// concurrent transaction on the same order (another replica's saga step) waits, then reads what
// this one committed.
func (t sqlTx) Record(ctx context.Context, id string) (Record, error) {
	return getRecord(ctx, t.tx, id, t.tx.Dialect().ForUpdate())
}

func (t sqlTx) Insert(ctx context.Context, o *orderv1.Order) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO orders (`+orderColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		o.GetId(), o.GetCustomerId(), o.GetCurrency(), o.GetTotalCents(), int32(o.GetStatus()), o.GetStatusReason(),
		o.GetPaymentId(), o.GetPaymentMethod(), false, false, o.GetCreateTime().AsTime().UnixNano(), o.GetUpdateTime().AsTime().UnixNano())
	if err != nil {
		return err
	}
	for i, it := range o.GetItems() {
		if _, err := t.tx.ExecContext(ctx, `INSERT INTO order_items (order_id, line, sku, quantity, unit_price_cents) VALUES (?, ?, ?, ?, ?)`,
			o.GetId(), i, it.GetSku(), it.GetQuantity(), it.GetUnitPriceCents()); err != nil {
			return err
		}
	}
	return nil
}

func (t sqlTx) Save(ctx context.Context, r Record) error {
	o := r.Order
	_, err := t.tx.ExecContext(ctx, `UPDATE orders SET status = ?, status_reason = ?, payment_id = ?, stock_reserved = ?,
		payment_captured = ?, update_time = ? WHERE id = ?`,
		int32(o.GetStatus()), o.GetStatusReason(), o.GetPaymentId(), r.StockReserved, r.PaymentCaptured,
		o.GetUpdateTime().AsTime().UnixNano(), o.GetId())
	return err
}

// Idempotency locks the customer's key (storage.Tx.Lock) until the transaction ends, whether
// a record exists or not: two requests with one key run one after the other, and the second
// finds the order of the first.
func (t sqlTx) Idempotency(ctx context.Context, customerID, key string) (IdempotencyRecord, error) {
	if err := t.tx.Lock(ctx, fmt.Sprintf("order.idempotency:%d:%s:%s", len(customerID), customerID, key)); err != nil {
		return IdempotencyRecord{CustomerID: customerID, Key: key}, err
	}
	return getIdempotency(ctx, t.tx, customerID, key)
}

func (t sqlTx) PutIdempotency(ctx context.Context, r IdempotencyRecord) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO idempotency_keys (customer_id, key, request_hash, order_id, expires_at)
		VALUES (?, ?, ?, ?, ?)
		ON CONFLICT (customer_id, key) DO UPDATE SET request_hash = excluded.request_hash,
			order_id = excluded.order_id, expires_at = excluded.expires_at`,
		r.CustomerID, r.Key, r.RequestHash, r.OrderID, r.ExpiresAt.UnixNano())
	return err
}

func (t sqlTx) PurgeIdempotency(ctx context.Context, now time.Time) error {
	_, err := t.tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE expires_at <= ?`, now.UnixNano())
	return err
}
