package storage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"
)

// Defaults of Config for PostgreSQL.
const (
	DefaultMaxConns   = 10
	DefaultTxAttempts = 10
	DefaultSearchPath = "public"
	// DefaultConnectTimeout bounds each connection attempt when the URL sets no
	// connect_timeout.
	DefaultConnectTimeout = 10 * time.Second
	defaultRetryBackoff   = 2 * time.Millisecond
	maxRetryBackoff       = 100 * time.Millisecond
)

// OpenPostgres connects to the PostgreSQL database of rawURL ("postgres://user@host:5432/db?
// search_path=shop_order", any libpq/pgx URL or keyword string) through pgx, creates the first
// schema of the URL's search_path when it is missing (default "public", which exists), and
// applies migrations under an advisory lock (see Migrate), so that replicas starting together
// migrate once. Read and Write are the same pool (Config.MaxConns connections); InTx runs
// READ COMMITTED transactions, retried on deadlocks (see InTx and Tx.Lock). A connection attempt gives up after the URL's
// connect_timeout (default DefaultConnectTimeout, 10s). The server probes idle connections
// (tcp_keepalives_idle 30s, interval 10s, count 3, unless the URL sets them), so that the
// advisory locks of a replica that vanished are freed within about a minute. Close the DB when
// done.
func OpenPostgres(ctx context.Context, rawURL string, migrations []string, cfg Config) (*DB, error) {
	if cfg.MaxConns < 0 || cfg.MaxConns == 1 || cfg.TxAttempts < 0 {
		return nil, errors.New("opening database: want at least 2 connections (the relay holds one for its claim) and no negative transaction attempts")
	}
	if cfg.MaxConns == 0 {
		cfg.MaxConns = DefaultMaxConns
	}
	if cfg.TxAttempts == 0 {
		cfg.TxAttempts = DefaultTxAttempts
	}
	pc, err := pgx.ParseConfig(rawURL) // its errors redact the password
	if err != nil {
		return nil, fmt.Errorf("opening database: bad PostgreSQL URL: %w", err)
	}
	if pc.ConnectTimeout == 0 {
		pc.ConnectTimeout = DefaultConnectTimeout
	}
	// A replica lost without closing its connections (a machine gone, a partition) must not
	// keep its advisory locks (the relay's claim) for the kernel's default two hours: the
	// server probes an idle connection after 30s and drops it after three lost probes.
	for k, v := range map[string]string{"tcp_keepalives_idle": "30", "tcp_keepalives_interval": "10", "tcp_keepalives_count": "3"} {
		if _, ok := pc.RuntimeParams[k]; !ok {
			pc.RuntimeParams[k] = v
		}
	}
	schema := firstSchema(pc.RuntimeParams["search_path"])
	db := stdlib.OpenDB(*pc)
	db.SetMaxOpenConns(cfg.MaxConns)
	db.SetMaxIdleConns(cfg.MaxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := db.PingContext(ctx); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("opening database: connecting to PostgreSQL %s:%d/%s: %w", pc.Host, pc.Port, pc.Database, err)
	}
	if err := migratePostgres(ctx, db, schema, migrations); err != nil {
		_ = db.Close()
		return nil, err
	}
	return &DB{Write: db, Read: db, Dialect: Postgres, attempts: cfg.TxAttempts}, nil
}

// firstSchema returns the first schema of a search_path setting ("a, b" -> "a"), unquoted;
// DefaultSearchPath when there is none.
func firstSchema(searchPath string) string {
	s, _, _ := strings.Cut(searchPath, ",")
	s = strings.TrimSpace(s)
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
	}
	if s == "" || s == "$user" {
		return DefaultSearchPath
	}
	return s
}

// migratePostgres creates schema when missing and applies migrations on one connection that
// holds the schema's migration advisory lock for the whole run: a replica starting beside
// another waits for it, then finds every version applied.
func migratePostgres(ctx context.Context, db *sql.DB, schema string, migrations []string) (err error) {
	conn, err := db.Conn(ctx)
	if err != nil {
		return fmt.Errorf("migrating: %w", err)
	}
	defer conn.Close()
	key := "shopgate.migrate:" + schema
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock(hashtextextended($1, 0))`, key); err != nil {
		return fmt.Errorf("migrating: taking the migration lock: %w", err)
	}
	defer func() {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if _, uerr := conn.ExecContext(uctx, `SELECT pg_advisory_unlock(hashtextextended($1, 0))`, key); uerr != nil {
			dropConn(conn) // the lock goes with the session
		}
	}()
	if _, err := conn.ExecContext(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{schema}.Sanitize()); err != nil {
		return fmt.Errorf("migrating: creating schema %q: %w", schema, err)
	}
	return migrate(ctx, conn, Postgres, migrations)
}

// dropConn makes database/sql close conn's session instead of reusing it (a session still
// holding an advisory lock must not go back to the pool).
func dropConn(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return errDropConn })
}

// IsRetryable reports whether err is a PostgreSQL serialization failure (40001) or deadlock
// (40P01): the transaction rolled back and may simply run again.
func IsRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01")
}

// retryWait waits before attempt (2, 3, ...): a random part of an exponential backoff from
// 2ms up to 100ms, so that the transactions that collided do not collide again.
func retryWait(ctx context.Context, attempt int) error {
	d := min(defaultRetryBackoff<<min(attempt-2, 10), maxRetryBackoff)
	t := time.NewTimer(d/2 + rand.N(d/2+1))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
