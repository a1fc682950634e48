package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// ErrSchemaTooNew is returned when the database was migrated by a newer version of the code
// than the one running: its schema version exceeds the number of known migrations.
var ErrSchemaTooNew = errors.New("database schema is newer than this program")

func createMigrationsTable(d Dialect) string {
	typ := "INTEGER"
	if d == Postgres {
		typ = "BIGINT"
	}
	return `CREATE TABLE IF NOT EXISTS schema_migrations (
	version    INTEGER PRIMARY KEY,
	applied_at ` + typ + ` NOT NULL
)`
}

// migrationConn is what migrate needs: *sql.DB and *sql.Conn have it.
type migrationConn interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// Migrate brings db, of dialect d, to the latest version of migrations: script i (0-based) is
// version i+1. Each script not yet recorded in schema_migrations runs in its own transaction
// together with its record, so a failed script leaves no trace and is retried at the next
// start. A database whose version is above len(migrations) is refused with ErrSchemaTooNew.
//
// On PostgreSQL the whole run holds an advisory lock (per schema, the first of search_path) on
// one connection: replicas starting together wait for the first and migrate once. On SQLite the
// write lock of each script's transaction serialises them.
func Migrate(ctx context.Context, db *sql.DB, d Dialect, migrations []string) error {
	if d == Postgres {
		var schema string
		if err := db.QueryRowContext(ctx, `SELECT COALESCE(current_schema(), '')`).Scan(&schema); err != nil {
			return fmt.Errorf("migrating: %w", err)
		}
		if schema == "" {
			var sp string
			if err := db.QueryRowContext(ctx, `SHOW search_path`).Scan(&sp); err != nil {
				return fmt.Errorf("migrating: %w", err)
			}
			schema = firstSchema(sp)
		}
		return migratePostgres(ctx, db, schema, migrations)
	}
	return migrate(ctx, db, d, migrations)
}

func migrate(ctx context.Context, db migrationConn, d Dialect, migrations []string) error {
	if _, err := db.ExecContext(ctx, createMigrationsTable(d)); err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	var current int
	if err := db.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return fmt.Errorf("migrating: reading version: %w", err)
	}
	if current > len(migrations) {
		return fmt.Errorf("migrating: version %d, code knows %d: %w", current, len(migrations), ErrSchemaTooNew)
	}
	for i := current; i < len(migrations); i++ {
		if err := apply(ctx, db, d, i+1, migrations[i]); err != nil {
			return fmt.Errorf("migrating to version %d: %w", i+1, err)
		}
	}
	return nil
}

func apply(ctx context.Context, db migrationConn, d Dialect, version int, script string) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	// Another process may have applied it while we waited for the write lock.
	var done int
	if err := tx.QueryRowContext(ctx, d.Rebind(`SELECT COUNT(*) FROM schema_migrations WHERE version = ?`), version).Scan(&done); err != nil {
		return err
	}
	if done > 0 {
		return nil
	}
	if _, err := tx.ExecContext(ctx, script); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, d.Rebind(`INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)`),
		version, time.Now().UnixNano()); err != nil {
		return err
	}
	return tx.Commit()
}
