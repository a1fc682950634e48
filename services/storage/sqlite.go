package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Defaults of Config.
const (
	DefaultBusyTimeout = 5 * time.Second
	DefaultMaxReaders  = 4
)

// Config tunes Open. The zero value means the defaults.
type Config struct {
	// BusyTimeout is how long a statement waits for a lock held by another connection or
	// process before failing with SQLITE_BUSY. Default: DefaultBusyTimeout (5s).
	BusyTimeout time.Duration
	// MaxReaders caps the read pool. Default: DefaultMaxReaders (4). SQLite only.
	MaxReaders int
	// MaxConns caps the connection pool; at least 2. Default: DefaultMaxConns (10).
	// PostgreSQL only.
	MaxConns int
	// TxAttempts is how many times InTx runs a transaction that failed on a deadlock or a
	// serialization failure before it gives up. Default: DefaultTxAttempts (10). PostgreSQL only.
	TxAttempts int
}

// DB is one database: a SQLite file opened with a writer and a reader pool, or a PostgreSQL
// database (one pool). Its statements are written with '?' placeholders: InTx's Tx and Reader
// rebind them for Dialect.
type DB struct {
	// Write is the handle of every transaction that writes. SQLite: a single connection whose
	// transactions are BEGIN IMMEDIATE. PostgreSQL: the pool.
	Write *sql.DB
	// Read is the handle of queries outside a write transaction. SQLite: a pool of read-only
	// connections. PostgreSQL: the same pool as Write.
	Read *sql.DB
	// Dialect is the database's SQL dialect.
	Dialect Dialect

	attempts int // InTx's attempts on PostgreSQL
}

// Open opens (creating it and its folder if needed) the database file at path and applies
// migrations (see Migrate). Close the DB when done.
func Open(ctx context.Context, path string, migrations []string, cfg Config) (*DB, error) {
	if path == "" || strings.ContainsAny(path, "?#") {
		return nil, errors.New("opening database: path must be non-empty, without '?' or '#'")
	}
	if cfg.BusyTimeout < 0 || cfg.MaxReaders < 0 {
		return nil, errors.New("opening database: negative busy timeout or reader count")
	}
	if cfg.BusyTimeout == 0 {
		cfg.BusyTimeout = DefaultBusyTimeout
	}
	if cfg.MaxReaders == 0 {
		cfg.MaxReaders = DefaultMaxReaders
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	q := url.Values{}
	q.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.BusyTimeout.Milliseconds()))
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(1)")
	q.Add("_pragma", "synchronous(NORMAL)")
	base := "file:" + path + "?"

	w, err := sql.Open("sqlite", base+q.Encode()+"&_txlock=immediate")
	if err != nil {
		return nil, fmt.Errorf("opening database: %w", err)
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	w.SetConnMaxIdleTime(0)
	if err := w.PingContext(ctx); err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("opening database: %w", err)
	}
	if err := Migrate(ctx, w, SQLite, migrations); err != nil {
		_ = w.Close()
		return nil, err
	}
	rq := url.Values{}
	rq.Add("_pragma", fmt.Sprintf("busy_timeout(%d)", cfg.BusyTimeout.Milliseconds()))
	rq.Add("_pragma", "foreign_keys(1)")
	rq.Add("_pragma", "query_only(1)")
	r, err := sql.Open("sqlite", base+rq.Encode())
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("opening database: %w", err)
	}
	r.SetMaxOpenConns(cfg.MaxReaders)
	r.SetMaxIdleConns(cfg.MaxReaders)
	return &DB{Write: w, Read: r, Dialect: SQLite}, nil
}

// Close closes the pools.
func (db *DB) Close() error {
	if db.Read == db.Write {
		return db.Write.Close()
	}
	return errors.Join(db.Read.Close(), db.Write.Close())
}

// InTx runs fn in one write transaction and commits it when fn returns nil; otherwise it rolls
// back and returns fn's error.
//
// SQLite: BEGIN IMMEDIATE on the single writer, so transactions run one at a time; fn runs once.
//
// PostgreSQL: READ COMMITTED, several at a time, within one replica and across replicas. A
// transaction that reads something and writes on what it read must therefore lock it first,
// so that a concurrent one waits and then reads the committed result (no lost update): Tx.Lock
// for a key of its own (an aggregate, a row that may not exist yet: insert-or-update paths), or
// SELECT ... FOR UPDATE (Dialect.ForUpdate) for existing rows. A transaction that fails on a
// deadlock or a serialization failure (IsRetryable), in fn or at commit, rolls back and runs
// again, up to Config.TxAttempts times in all, after a short random backoff: fn must therefore
// have no effect outside tx that a second run would repeat (reset what it sets at its start).
func (db *DB) InTx(ctx context.Context, fn func(*Tx) error) error {
	if db.Dialect != Postgres {
		return db.runTx(ctx, nil, fn)
	}
	for attempt := 1; ; attempt++ {
		err := db.runTx(ctx, nil, fn)
		if err == nil || !IsRetryable(err) || attempt >= db.attempts {
			if err != nil && IsRetryable(err) {
				return fmt.Errorf("transaction failed %d times on concurrent updates: %w", attempt, err)
			}
			return err
		}
		if werr := retryWait(ctx, attempt+1); werr != nil {
			return errors.Join(err, werr)
		}
	}
}

func (db *DB) runTx(ctx context.Context, opts *sql.TxOptions, fn func(*Tx) error) error {
	tx, err := db.Write.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(&Tx{tx: tx, d: db.Dialect}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}
