package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/acme/shopgate/internal/testpg"
	"github.com/acme/shopgate/services/storage"
	"github.com/jackc/pgx/v5/pgconn"
)

var v1 = []string{`CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0))`}
var v2 = append(append([]string(nil), v1...), `ALTER TABLE t ADD COLUMN label TEXT NOT NULL DEFAULT ''`)

// both is the same scripts for both dialects (the test scripts are portable).
func both(scripts []string) storage.Migrations {
	return storage.Migrations{SQLite: scripts, Postgres: scripts}
}

// dialect is one database the tests run on: newSource returns a fresh empty database.
type dialect struct {
	name      string
	newSource func(t *testing.T) storage.Source
}

func dialects() []dialect {
	return []dialect{
		{"sqlite", func(t *testing.T) storage.Source {
			return storage.Source{Path: filepath.Join(t.TempDir(), "sub", "x.db")}
		}},
		{"postgres", func(t *testing.T) storage.Source {
			return storage.Source{URL: testpg.Schema(t, t.Name())}
		}},
	}
}

func open(t *testing.T, src storage.Source, m []string) *storage.DB {
	t.Helper()
	db, err := storage.OpenSource(context.Background(), src, both(m), storage.Config{})
	if err != nil {
		t.Fatalf("opening: %v", err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// schemaVersion returns the schema version recorded in db, 0 for none.
func schemaVersion(t *testing.T, db *sql.DB) int {
	t.Helper()
	var v int
	if err := db.QueryRow(`SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&v); err != nil {
		t.Fatalf("reading schema version: %v", err)
	}
	return v
}

func TestMigrations(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name      string
		first     []string
		second    []string
		wantErr   error
		wantVer   int
		wantLabel bool
	}{
		{name: "reopen applies nothing twice", first: v1, second: v1, wantVer: 1},
		{name: "upgrade applies only the new script", first: v1, second: v2, wantVer: 2, wantLabel: true},
		{name: "newer database refused", first: v2, second: v1, wantErr: storage.ErrSchemaTooNew},
	}
	for _, d := range dialects() {
		for _, tc := range tests {
			t.Run(d.name+"/"+tc.name, func(t *testing.T) {
				src := d.newSource(t)
				db, err := storage.OpenSource(ctx, src, both(tc.first), storage.Config{})
				if err != nil {
					t.Fatalf("first open: %v", err)
				}
				if _, err := db.Write.Exec(`INSERT INTO t (id, n) VALUES (1, 7)`); err != nil {
					t.Fatal(err)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
				db, err = storage.OpenSource(ctx, src, both(tc.second), storage.Config{})
				if tc.wantErr != nil {
					if !errors.Is(err, tc.wantErr) {
						t.Fatalf("second open: got %v, want %v", err, tc.wantErr)
					}
					return
				}
				if err != nil {
					t.Fatalf("second open: %v", err)
				}
				defer db.Close()
				if ver := schemaVersion(t, db.Read); ver != tc.wantVer {
					t.Fatalf("version = %d, want %d", ver, tc.wantVer)
				}
				var rows int
				if err := db.Read.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != tc.wantVer {
					t.Fatalf("schema_migrations rows = %d, %v; want %d", rows, err, tc.wantVer)
				}
				var n int
				if err := db.Read.QueryRow(`SELECT n FROM t`).Scan(&n); err != nil || n != 7 {
					t.Fatalf("data after reopen: n=%d err=%v", n, err)
				}
				_, err = db.Read.Exec(`SELECT label FROM t`)
				if (err == nil) != tc.wantLabel {
					t.Fatalf("label column present=%v, want %v", err == nil, tc.wantLabel)
				}
			})
		}
	}
}

func TestFailedMigrationLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	bad := append(append([]string(nil), v1...), `CREATE TABLE u (id INTEGER); THIS IS NOT SQL`)
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			src := d.newSource(t)
			if db, err := storage.OpenSource(ctx, src, both(bad), storage.Config{}); err == nil {
				_ = db.Close()
				t.Fatal("broken migration accepted")
			}
			db := open(t, src, v1)
			if v := schemaVersion(t, db.Read); v != 1 {
				t.Fatalf("version = %d, want 1", v)
			}
			if _, err := db.Read.Exec(`SELECT * FROM u`); err == nil {
				t.Fatal("half-applied migration left table u behind")
			}
		})
	}
}

// Replicas starting together on one PostgreSQL schema (missing at first) migrate it once: each
// script, which would fail a second time, runs once, and every open succeeds.
func TestPostgresConcurrentOpensMigrateOnce(t *testing.T) {
	base := testpg.Schema(t, "concurrent_open")
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	schema := q.Get("search_path") + "_fresh" // not created yet: the opens create it
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	t.Cleanup(func() {
		db, err := sql.Open("pgx", testpg.Need(t))
		if err == nil {
			_, _ = db.Exec(`DROP SCHEMA IF EXISTS "` + schema + `" CASCADE`)
			_ = db.Close()
		}
	})
	scripts := append(append([]string(nil), v2...), `CREATE TABLE w (id INTEGER PRIMARY KEY)`)
	const replicas = 4
	dbs := make([]*storage.DB, replicas)
	errs := make([]error, replicas)
	var wg sync.WaitGroup
	for i := range replicas {
		wg.Go(func() {
			dbs[i], errs[i] = storage.OpenSource(context.Background(), storage.Source{URL: u.String()}, both(scripts), storage.Config{})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		defer dbs[i].Close()
	}
	var rows int
	if err := dbs[0].Read.QueryRow(`SELECT COUNT(*) FROM schema_migrations`).Scan(&rows); err != nil || rows != len(scripts) {
		t.Fatalf("schema_migrations rows = %d, %v; want %d", rows, err, len(scripts))
	}
	var where string
	if err := dbs[1].Read.QueryRow(`SELECT table_schema FROM information_schema.tables WHERE table_name = 'w'`).Scan(&where); err != nil || where != schema {
		t.Fatalf("table w in schema %q (%v), want %q", where, err, schema)
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		src     storage.Source
		cfg     storage.Config
		wantErr string
	}{
		{"empty path", storage.Source{}, storage.Config{}, "path must be non-empty"},
		{"query in path", storage.Source{Path: filepath.Join(dir, "a.db?mode=ro")}, storage.Config{}, "without '?'"},
		{"fragment in path", storage.Source{Path: filepath.Join(dir, "b.db#x")}, storage.Config{}, "without '?'"},
		{"negative readers", storage.Source{Path: filepath.Join(dir, "c.db")}, storage.Config{MaxReaders: -1}, "negative"},
		{"negative busy timeout", storage.Source{Path: filepath.Join(dir, "d.db")}, storage.Config{BusyTimeout: -1}, "negative"},
		{"not a postgres url", storage.Source{URL: "mysql://127.0.0.1/x"}, storage.Config{}, "postgres://"},
		{"unparsable postgres url", storage.Source{URL: "postgres://u:secret@127.0.0.1:notaport/x"}, storage.Config{}, "bad PostgreSQL URL"},
		{"negative connections", storage.Source{URL: "postgres://127.0.0.1/x"}, storage.Config{MaxConns: -1}, "at least 2"},
		{"one connection", storage.Source{URL: "postgres://127.0.0.1/x"}, storage.Config{MaxConns: 1}, "at least 2"},
		{"nothing listening", storage.Source{URL: "postgres://u:secret@127.0.0.1:1/x?connect_timeout=2"}, storage.Config{}, "connecting to PostgreSQL 127.0.0.1:1/x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := storage.OpenSource(context.Background(), tc.src, both(v1), tc.cfg)
			if err == nil {
				_ = db.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "secret") {
				t.Fatalf("error %q: want it to say %q, without the password", err, tc.wantErr)
			}
		})
	}
}

func TestSQLitePragmas(t *testing.T) {
	db := open(t, storage.Source{Path: filepath.Join(t.TempDir(), "x.db")}, v1)
	tests := []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"foreign_keys", "1"},
		{"busy_timeout", "5000"},
	}
	for _, tc := range tests {
		t.Run(tc.pragma, func(t *testing.T) {
			var got string
			if err := db.Write.QueryRow("PRAGMA " + tc.pragma).Scan(&got); err != nil || got != tc.want {
				t.Fatalf("PRAGMA %s = %q, %v; want %q", tc.pragma, got, err, tc.want)
			}
		})
	}
}

func TestInTx(t *testing.T) {
	ctx := context.Background()
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			src := d.newSource(t)
			// Two handles on one database: two replicas (two processes on one SQLite file).
			db, other := open(t, src, v1), open(t, src, v1)
			if db.Dialect.String() != d.name {
				t.Fatalf("dialect %v, want %s", db.Dialect, d.name)
			}
			t.Run("rollback on error", func(t *testing.T) {
				boom := errors.New("boom")
				err := db.InTx(ctx, func(tx *storage.Tx) error {
					if _, err := tx.ExecContext(ctx, `INSERT INTO t (id, n) VALUES (?, ?)`, 1, 1); err != nil {
						return err
					}
					return boom
				})
				if !errors.Is(err, boom) {
					t.Fatalf("InTx = %v", err)
				}
				var n int
				_ = db.Reader().QueryRowContext(ctx, `SELECT COUNT(*) FROM t WHERE id = ?`, 1).Scan(&n)
				if n != 0 {
					t.Fatalf("rows after rollback = %d", n)
				}
			})
			// Read-modify-write from both replicas at once, on an existing row (id 100, locked by
			// SELECT ... FOR UPDATE) and on a row each transaction inserts when missing or
			// updates (id 200, under Tx.Lock): no lost update.
			t.Run("concurrent replicas lose no update", func(t *testing.T) {
				if _, err := db.Write.Exec(`INSERT INTO t (id, n) VALUES (100, 0)`); err != nil {
					t.Fatal(err)
				}
				const each = 25
				var wg sync.WaitGroup
				for _, h := range []*storage.DB{db, other} {
					for range each {
						wg.Go(func() {
							err := h.InTx(ctx, func(tx *storage.Tx) error {
								if err := tx.Lock(ctx, "t:200"); err != nil {
									return err
								}
								for _, id := range []int{100, 200} {
									var n int
									err := tx.QueryRowContext(ctx, `SELECT n FROM t WHERE id = ?`+tx.Dialect().ForUpdate(), id).Scan(&n)
									switch {
									case errors.Is(err, sql.ErrNoRows):
										_, err = tx.ExecContext(ctx, `INSERT INTO t (id, n) VALUES (?, 1)`, id)
									case err == nil:
										_, err = tx.ExecContext(ctx, `UPDATE t SET n = ? WHERE id = ?`, n+1, id)
									}
									if err != nil {
										return err
									}
								}
								return nil
							})
							if err != nil {
								t.Error(err)
							}
						})
					}
				}
				wg.Wait()
				for _, id := range []int{100, 200} {
					var n int
					_ = other.Reader().QueryRowContext(ctx, `SELECT n FROM t WHERE id = ?`, id).Scan(&n)
					if n != 2*each {
						t.Fatalf("row %d: counter = %d, want %d (lost updates)", id, n, 2*each)
					}
				}
			})
		})
	}
}

// A PostgreSQL transaction failing on a serialization failure or a deadlock runs again, up to
// TxAttempts times; another error is returned at once.
func TestPostgresInTxRetries(t *testing.T) {
	ctx := context.Background()
	src := storage.Source{URL: testpg.Schema(t, "retries")}
	db, err := storage.OpenSource(ctx, src, both(v1), storage.Config{TxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	serialization := &pgconn.PgError{Code: "40001", Message: "could not serialize access"}
	deadlock := &pgconn.PgError{Code: "40P01", Message: "deadlock detected"}
	other := &pgconn.PgError{Code: "23505", Message: "duplicate key"}
	tests := []struct {
		name      string
		failures  []error // returned by the first runs, in order
		wantRuns  int
		wantErr   error
		wantSaved bool
	}{
		{"no failure", nil, 1, nil, true},
		{"two retryable failures", []error{serialization, deadlock}, 3, nil, true},
		{"attempts exhausted", []error{serialization, serialization, serialization}, 3, serialization, false},
		{"other error not retried", []error{other}, 1, other, false},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			runs := 0
			err := db.InTx(ctx, func(tx *storage.Tx) error {
				runs++
				if _, err := tx.ExecContext(ctx, `INSERT INTO t (id, n) VALUES (?, ?)`, 1000+i, runs); err != nil {
					return err
				}
				if runs <= len(tc.failures) {
					return fmt.Errorf("step: %w", tc.failures[runs-1])
				}
				return nil
			})
			if runs != tc.wantRuns || !errors.Is(err, tc.wantErr) {
				t.Fatalf("runs %d, err %v; want %d, %v", runs, err, tc.wantRuns, tc.wantErr)
			}
			var n int
			err = db.Reader().QueryRowContext(ctx, `SELECT n FROM t WHERE id = ?`, 1000+i).Scan(&n)
			if saved := err == nil; saved != tc.wantSaved || (saved && n != tc.wantRuns) {
				t.Fatalf("row saved %v (n %d), want %v from run %d", saved, n, tc.wantSaved, tc.wantRuns)
			}
		})
	}
}

func TestQueryAll(t *testing.T) {
	ctx := context.Background()
	for _, d := range dialects() {
		t.Run(d.name, func(t *testing.T) {
			db := open(t, d.newSource(t), v1)
			if err := db.InTx(ctx, func(tx *storage.Tx) error {
				_, err := tx.ExecContext(ctx, `INSERT INTO t (id, n) VALUES (1, 10), (2, 20), (3, 30)`)
				return err
			}); err != nil {
				t.Fatal(err)
			}
			scanN := func(row storage.Scanner) (int, error) {
				var n int
				return n, row.Scan(&n)
			}
			badScan := errors.New("bad row")
			tests := []struct {
				name    string
				scan    func(storage.Scanner) (int, error)
				query   string
				args    []any
				want    []int
				wantErr error
			}{
				{"every row in order", scanN, `SELECT n FROM t WHERE n > ? ORDER BY n DESC`, []any{0}, []int{30, 20, 10}, nil},
				{"none is nil", scanN, `SELECT n FROM t WHERE n > ?`, []any{100}, nil, nil},
				{"a scan error stops it", func(storage.Scanner) (int, error) { return 0, badScan }, `SELECT n FROM t`, nil, nil, badScan},
			}
			for _, tc := range tests {
				t.Run(tc.name, func(t *testing.T) {
					got, err := storage.QueryAll(ctx, db.Reader(), tc.scan, tc.query, tc.args...)
					if !errors.Is(err, tc.wantErr) || len(got) != len(tc.want) {
						t.Fatalf("got %v, %v; want %v, %v", got, err, tc.want, tc.wantErr)
					}
					for i := range got {
						if got[i] != tc.want[i] {
							t.Fatalf("got %v, want %v", got, tc.want)
						}
					}
					if tc.want == nil && got != nil {
						t.Fatalf("got %#v, want nil", got)
					}
				})
			}
			if _, err := storage.QueryAll(ctx, db.Reader(), scanN, `SELECT nope FROM t`); err == nil {
				t.Fatal("a bad query gave no error")
			}
		})
	}
}

// The sessions of a PostgreSQL DB use the URL's schema and are probed by the server when idle
// (so that a vanished replica's advisory locks are freed), unless the URL says otherwise.
func TestPostgresSessionSettings(t *testing.T) {
	base := testpg.Schema(t, "session")
	tests := []struct {
		name, url, wantIdle string
	}{
		{"defaults", base, "30"},
		{"url wins", base + "&tcp_keepalives_idle=7", "7"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db := open(t, storage.Source{URL: tc.url}, v1)
			var idle, schema string
			if err := db.Read.QueryRow(`SELECT current_setting('tcp_keepalives_idle'), current_schema()`).Scan(&idle, &schema); err != nil {
				t.Fatal(err)
			}
			u, _ := url.Parse(base)
			if idle != tc.wantIdle || schema != u.Query().Get("search_path") {
				t.Fatalf("tcp_keepalives_idle %q, schema %q; want %q, %q", idle, schema, tc.wantIdle, u.Query().Get("search_path"))
			}
		})
	}
}
