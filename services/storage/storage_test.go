package storage_test

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/acme/shopgate/services/storage"
)

var v1 = []string{`CREATE TABLE t (id INTEGER PRIMARY KEY, n INTEGER NOT NULL CHECK (n >= 0))`}
var v2 = append(append([]string(nil), v1...), `ALTER TABLE t ADD COLUMN label TEXT NOT NULL DEFAULT ''`)

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
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sub", "x.db")
			db, err := storage.Open(ctx, path, tc.first, storage.Config{})
			if err != nil {
				t.Fatalf("first open: %v", err)
			}
			if _, err := db.Write.Exec(`INSERT INTO t (n) VALUES (7)`); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			db, err = storage.Open(ctx, path, tc.second, storage.Config{})
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

func TestFailedMigrationLeavesNoTrace(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "x.db")
	bad := append(append([]string(nil), v1...), `CREATE TABLE u (id INTEGER); THIS IS NOT SQL`)
	if _, err := storage.Open(ctx, path, bad, storage.Config{}); err == nil {
		t.Fatal("broken migration accepted")
	}
	db, err := storage.Open(ctx, path, v1, storage.Config{})
	if err != nil {
		t.Fatalf("reopen with good migrations: %v", err)
	}
	defer db.Close()
	if v := schemaVersion(t, db.Read); v != 1 {
		t.Fatalf("version = %d, want 1", v)
	}
	if _, err := db.Read.Exec(`SELECT * FROM u`); err == nil {
		t.Fatal("half-applied migration left table u behind")
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		path string
		cfg  storage.Config
	}{
		{"empty path", "", storage.Config{}},
		{"query in path", filepath.Join(dir, "a.db?mode=ro"), storage.Config{}},
		{"fragment in path", filepath.Join(dir, "b.db#x"), storage.Config{}},
		{"negative readers", filepath.Join(dir, "c.db"), storage.Config{MaxReaders: -1}},
		{"negative busy timeout", filepath.Join(dir, "d.db"), storage.Config{BusyTimeout: -1}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			db, err := storage.Open(context.Background(), tc.path, v1, tc.cfg)
			if err == nil {
				_ = db.Close()
				t.Fatal("accepted")
			}
		})
	}
}

func TestInTxSettings(t *testing.T) {
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "x.db"), v1, storage.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
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
	t.Run("rollback on error", func(t *testing.T) {
		boom := errors.New("boom")
		err := db.InTx(ctx, func(tx *sql.Tx) error {
			if _, err := tx.Exec(`INSERT INTO t (n) VALUES (1)`); err != nil {
				return err
			}
			return boom
		})
		if !errors.Is(err, boom) {
			t.Fatalf("InTx = %v", err)
		}
		var n int
		_ = db.Read.QueryRow(`SELECT COUNT(*) FROM t`).Scan(&n)
		if n != 0 {
			t.Fatalf("rows after rollback = %d", n)
		}
	})
	t.Run("concurrent writers serialise", func(t *testing.T) {
		if _, err := db.Write.Exec(`INSERT INTO t (id, n) VALUES (100, 0)`); err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for range 50 {
			wg.Go(func() {
				err := db.InTx(ctx, func(tx *sql.Tx) error {
					var n int
					if err := tx.QueryRow(`SELECT n FROM t WHERE id = 100`).Scan(&n); err != nil {
						return err
					}
					_, err := tx.Exec(`UPDATE t SET n = ? WHERE id = 100`, n+1)
					return err
				})
				if err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		var n int
		_ = db.Read.QueryRow(`SELECT n FROM t WHERE id = 100`).Scan(&n)
		if n != 50 {
			t.Fatalf("counter = %d, want 50 (lost updates)", n)
		}
	})
}

func TestQueryAll(t *testing.T) {
	ctx := context.Background()
	db, err := storage.Open(ctx, filepath.Join(t.TempDir(), "q.db"), v1, storage.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.InTx(ctx, func(tx *sql.Tx) error {
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
			got, err := storage.QueryAll(ctx, db.Read, tc.scan, tc.query, tc.args...)
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
	if _, err := storage.QueryAll(ctx, db.Read, scanN, `SELECT nope FROM t`); err == nil {
		t.Fatal("a bad query gave no error")
	}
}
