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
	// MaxReaders caps the read pool. Default: DefaultMaxReaders (4).
	MaxReaders int
}

// DB is one SQLite database file opened with a writer and a reader pool.
type DB struct {
	// Write is a single connection; its transactions are BEGIN IMMEDIATE. Use it for every
	// transaction that writes.
	Write *sql.DB
	// Read is a pool of read-only connections for queries outside a write transaction.
	Read *sql.DB
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
	if err := Migrate(ctx, w, migrations); err != nil {
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
	return &DB{Write: w, Read: r}, nil
}

// Close closes both pools.
func (db *DB) Close() error {
	return errors.Join(db.Read.Close(), db.Write.Close())
}

// InTx runs fn in one write transaction (BEGIN IMMEDIATE) and commits it when fn returns nil;
// otherwise it rolls back and returns fn's error.
func (db *DB) InTx(ctx context.Context, fn func(*sql.Tx) error) error {
	tx, err := db.Write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("beginning transaction: %w", err)
	}
	if err := fn(tx); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("committing transaction: %w", err)
	}
	return nil
}
