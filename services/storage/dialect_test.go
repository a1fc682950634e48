package storage_test

import (
	"testing"

	"github.com/acme/shopgate/services/storage"
)

func TestRebind(t *testing.T) {
	tests := []struct {
		d        storage.Dialect
		in, want string
	}{
		{storage.SQLite, `SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = ? AND c = ?`},
		{storage.Postgres, `SELECT a FROM t WHERE b = ? AND c = ?`, `SELECT a FROM t WHERE b = $1 AND c = $2`},
		{storage.Postgres, `SELECT '?', "a?" FROM t WHERE b IN (?,?,?)`, `SELECT '?', "a?" FROM t WHERE b IN ($1,$2,$3)`},
		{storage.Postgres, `SELECT 'it''s ?' WHERE x = ?`, `SELECT 'it''s ?' WHERE x = $1`},
		{storage.Postgres, `no placeholders`, `no placeholders`},
	}
	for _, tc := range tests {
		if got := tc.d.Rebind(tc.in); got != tc.want {
			t.Errorf("%v.Rebind(%q) = %q, want %q", tc.d, tc.in, got, tc.want)
		}
	}
}
