// Package pgnotifytest gives tests the machine's PostgreSQL server and channels of their own.
package pgnotifytest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"github.com/acme/shopgate/internal/testpg"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// URL returns the test server's URL (internal/testpg: $SHOPGATE_TEST_POSTGRES_URL, default
// postgres://postgres@127.0.0.1:5432/test) once it answers; when it does not, t is skipped, or
// failed when CI=true.
func URL(t testing.TB) string {
	t.Helper()
	return testpg.Need(t)
}

// Channel returns a channel name no other test uses.
func Channel(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "test_" + hex.EncodeToString(b)
}

// Exec runs sql with args on a connection of its own (NOTIFY from "another process",
// pg_terminate_backend), failing t on error.
func Exec(t testing.TB, url, sql string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if _, err := conn.Exec(ctx, sql, args...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// Terminate ends the server process pid (as a server restart or a failover would end the
// connection), failing t when it was not running.
func Terminate(t testing.TB, url string, pid uint32) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	defer func() { _ = conn.Close(ctx) }()
	var ok bool
	if err := conn.QueryRow(ctx, `SELECT pg_terminate_backend($1)`, int32(pid)).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminating backend %d: %v, %v", pid, ok, err)
	}
}

// QueryRow runs sql with args on a connection of its own and scans its one row into dest,
// failing t on error.
func QueryRow(t testing.TB, url, sql string, args []any, dest ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatalf("connecting to %s: %v", url, err)
	}
	defer func() { _ = conn.Close(ctx) }()
	if err := conn.QueryRow(ctx, sql, args...).Scan(dest...); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}
