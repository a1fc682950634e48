package storage

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
)

// errDropConn, returned from sql.Conn.Raw, makes database/sql close the connection.
var errDropConn = driver.ErrBadConn

// Source says where a service's database is. The zero value is invalid.
type Source struct {
	// URL is a PostgreSQL URL ("postgres://user@host:5432/db?search_path=shop_order"); when
	// set, it wins over Path. Default "": SQLite at Path.
	URL string
	// Path is the SQLite file, used when URL is empty.
	Path string
}

// IsPostgres reports whether rawURL names a PostgreSQL database: it starts with "postgres://"
// or "postgresql://".
func IsPostgres(rawURL string) bool {
	return strings.HasPrefix(rawURL, "postgres://") || strings.HasPrefix(rawURL, "postgresql://")
}

// Migrations are a database's schema scripts in both dialects, script i being version i+1 in
// each. The lists are separate because the SQL differs (types, identity columns) and because
// each dialect's history is its own: a SQLite database keeps the versions it already has, and a
// PostgreSQL one starts from a schema written for it.
type Migrations struct {
	SQLite   []string
	Postgres []string
}

// OpenSource opens src: OpenPostgres with m.Postgres when src.URL is set, else Open (SQLite)
// with m.SQLite. A URL that is not postgres:// or postgresql:// is refused.
func OpenSource(ctx context.Context, src Source, m Migrations, cfg Config) (*DB, error) {
	if src.URL != "" {
		if !IsPostgres(src.URL) {
			return nil, errors.New("opening database: the database URL must start with postgres:// or postgresql://")
		}
		return OpenPostgres(ctx, src.URL, m.Postgres, cfg)
	}
	return Open(ctx, src.Path, m.SQLite, cfg)
}

// Tx is one transaction of InTx. Its methods take statements with '?' placeholders and rebind
// them for the database's dialect; it is an events.Execer and a Querier.
type Tx struct {
	tx *sql.Tx
	d  Dialect
}

// Dialect is the transaction's database dialect.
func (t *Tx) Dialect() Dialect { return t.d }

// Lock takes the lock named key until the transaction ends, waiting while another transaction
// holds it: the transactions that lock one key run one after the other, each reading what the
// previous one committed. Lock a key that names what the transaction reads and then writes
// (an order, a reservation), before reading it. PostgreSQL: a transaction-level advisory lock
// on a 64-bit hash of key. SQLite: nothing, its writers already run one at a time.
func (t *Tx) Lock(ctx context.Context, key string) error {
	if t.d != Postgres {
		return nil
	}
	if _, err := t.tx.ExecContext(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, key); err != nil {
		return fmt.Errorf("locking %q: %w", key, err)
	}
	return nil
}

// ExecContext runs a statement that returns no rows.
func (t *Tx) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.d.Rebind(query), args...)
}

// QueryContext runs a query.
func (t *Tx) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.d.Rebind(query), args...)
}

// QueryRowContext runs a query of at most one row.
func (t *Tx) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.d.Rebind(query), args...)
}

// Reader returns the read handle (Read) as a Querier that rebinds '?' placeholders.
func (db *DB) Reader() Querier { return reader{db.Read, db.Dialect} }

type reader struct {
	db *sql.DB
	d  Dialect
}

func (r reader) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return r.db.QueryContext(ctx, r.d.Rebind(query), args...)
}

func (r reader) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	return r.db.QueryRowContext(ctx, r.d.Rebind(query), args...)
}
