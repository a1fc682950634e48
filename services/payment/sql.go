package payment

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/storage"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Migrations is the payment database schema, one script per version in each dialect.
var Migrations = storage.Migrations{
	SQLite: []string{
		events.Schema + `
CREATE TABLE payments (
	id             TEXT    PRIMARY KEY,
	order_id       TEXT    NOT NULL UNIQUE,
	customer_id    TEXT    NOT NULL,
	amount_cents   INTEGER NOT NULL CHECK (amount_cents >= 0),
	currency       TEXT    NOT NULL,
	status         INTEGER NOT NULL CHECK (status IN (1, 2, 3)),
	decline_reason TEXT    NOT NULL DEFAULT '',
	create_time    INTEGER NOT NULL,
	update_time    INTEGER NOT NULL
);
CREATE TABLE payment_tombstones (
	order_id   TEXT    PRIMARY KEY,
	reason     TEXT    NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL
);
`,
		// Version 2: the outbox stores the event type and the partition key.
		events.OutboxMigration,
	},
	Postgres: []string{
		events.PostgresSchema + `
CREATE TABLE payments (
	id             TEXT    COLLATE "C" PRIMARY KEY,
	order_id       TEXT    COLLATE "C" NOT NULL UNIQUE,
	customer_id    TEXT    NOT NULL,
	amount_cents   BIGINT  NOT NULL CHECK (amount_cents >= 0),
	currency       TEXT    NOT NULL,
	status         INTEGER NOT NULL CHECK (status IN (1, 2, 3)),
	decline_reason TEXT    NOT NULL DEFAULT '',
	create_time    BIGINT  NOT NULL,
	update_time    BIGINT  NOT NULL
);
CREATE TABLE payment_tombstones (
	order_id   TEXT   COLLATE "C" PRIMARY KEY,
	reason     TEXT   NOT NULL DEFAULT '',
	created_at BIGINT NOT NULL
);
`,
	},
}

// SQLStore is the Store on a SQL database: an embedded SQLite file or PostgreSQL (storage).
type SQLStore struct {
	db *storage.DB
}

// Open opens (creating and migrating) the payment database of src: PostgreSQL when src.URL is
// set, else the SQLite file src.Path.
func Open(ctx context.Context, src storage.Source) (*SQLStore, error) {
	db, err := storage.OpenSource(ctx, src, Migrations, storage.Config{})
	if err != nil {
		return nil, fmt.Errorf("opening payment store: %w", err)
	}
	return &SQLStore{db: db}, nil
}

// OpenSQLite opens (creating and migrating) the payment database at path.
func OpenSQLite(path string) (*SQLStore, error) {
	return Open(context.Background(), storage.Source{Path: path})
}

// DB returns the database's write handle, for the events relay (the outbox table).
func (s *SQLStore) DB() *sql.DB { return s.db.Write }

// Dialect returns the database's dialect, for the events relay.
func (s *SQLStore) Dialect() storage.Dialect { return s.db.Dialect }

// Close closes the database.
func (s *SQLStore) Close() error { return s.db.Close() }

const paymentColumns = `id, order_id, customer_id, amount_cents, currency, status, decline_reason, create_time, update_time`

func scanPayment(row storage.Scanner) (*paymentv1.Payment, error) {
	p := &paymentv1.Payment{}
	var status int32
	var created, updated int64
	err := row.Scan(&p.Id, &p.OrderId, &p.CustomerId, &p.AmountCents, &p.Currency, &status, &p.DeclineReason, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	p.Status = paymentv1.PaymentStatus(status)
	p.CreateTime = timestamppb.New(time.Unix(0, created))
	p.UpdateTime = timestamppb.New(time.Unix(0, updated))
	return p, nil
}

// Get implements Store.
func (s *SQLStore) Get(ctx context.Context, id string) (*paymentv1.Payment, error) {
	return scanPayment(s.db.Reader().QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`, id))
}

// ListByOrder implements Store.
func (s *SQLStore) ListByOrder(ctx context.Context, orderID string) ([]*paymentv1.Payment, error) {
	return storage.QueryAll(ctx, s.db.Reader(), scanPayment, `SELECT `+paymentColumns+` FROM payments WHERE order_id = ? ORDER BY create_time, id`, orderID)
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

// Payment locks the payment's row (PostgreSQL: FOR UPDATE) until the transaction ends.
func (t sqlTx) Payment(ctx context.Context, id string) (*paymentv1.Payment, error) {
	return scanPayment(t.tx.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = ?`+t.tx.Dialect().ForUpdate(), id))
}

// PaymentOfOrder locks the order's payment side (storage.Tx.Lock), whether a payment exists or
// not, and the payment's row: OrderCreated and OrderCancelled of one order handled at once by
// two replicas run one after the other, and the second sees the payment or tombstone of the
// first.
func (t sqlTx) PaymentOfOrder(ctx context.Context, orderID string) (*paymentv1.Payment, error) {
	if err := t.tx.Lock(ctx, "payment.order:"+orderID); err != nil {
		return nil, err
	}
	return scanPayment(t.tx.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE order_id = ?`+t.tx.Dialect().ForUpdate(), orderID))
}

func (t sqlTx) Insert(ctx context.Context, p *paymentv1.Payment) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO payments (`+paymentColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		p.GetId(), p.GetOrderId(), p.GetCustomerId(), p.GetAmountCents(), p.GetCurrency(), int32(p.GetStatus()),
		p.GetDeclineReason(), p.GetCreateTime().AsTime().UnixNano(), p.GetUpdateTime().AsTime().UnixNano())
	return err
}

func (t sqlTx) SetStatus(ctx context.Context, p *paymentv1.Payment) error {
	_, err := t.tx.ExecContext(ctx, `UPDATE payments SET status = ?, update_time = ? WHERE id = ?`,
		int32(p.GetStatus()), p.GetUpdateTime().AsTime().UnixNano(), p.GetId())
	return err
}

func (t sqlTx) Tombstoned(ctx context.Context, orderID string) (bool, error) {
	var n int
	err := t.tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM payment_tombstones WHERE order_id = ?`, orderID).Scan(&n)
	return n > 0, err
}

func (t sqlTx) PutTombstone(ctx context.Context, orderID, reason string) error {
	_, err := t.tx.ExecContext(ctx, `INSERT INTO payment_tombstones (order_id, reason, created_at) VALUES (?, ?, ?)
		ON CONFLICT DO NOTHING`, orderID, reason, time.Now().UnixNano())
	return err
}
