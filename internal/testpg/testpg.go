// Package testpg is what the tests that talk to the machine's PostgreSQL share: its URL, a check
// that says clearly when it is missing (a skip, or a failure under CI=true), and schemas of one
// test alone, dropped when the test ends.
package testpg

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultURL is the PostgreSQL database the tests use (bash .ci/services.sh starts the server):
// database test on 127.0.0.1:5432, trust authentication. The variable EnvURL overrides it.
const DefaultURL = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

// EnvURL names the variable that overrides DefaultURL (the same as services/pgnotify's tests).
const EnvURL = "SHOPGATE_TEST_POSTGRES_URL"

// URL returns $SHOPGATE_TEST_POSTGRES_URL, or DefaultURL when it is not set.
func URL() string {
	if u := os.Getenv(EnvURL); u != "" {
		return u
	}
	return DefaultURL
}

var (
	checkOnce sync.Once
	checkErr  error
)

// Need returns the base URL (URL()), or skips the test (fails it when CI=true) when the
// database does not answer there. The check runs once per test binary.
func Need(t testing.TB) string {
	t.Helper()
	checkOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, URL())
		if err != nil {
			checkErr = err
			return
		}
		checkErr = c.Ping(ctx)
		_ = c.Close(ctx)
	})
	if checkErr != nil {
		msg := "this test needs PostgreSQL with a database test on 127.0.0.1:5432, trust auth " +
			"(bash .ci/services.sh starts it; " + EnvURL + " overrides the URL " + URL() + "): " + checkErr.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return URL()
}

var unsafeChars = regexp.MustCompile(`[^a-z0-9_]+`)

// Schema creates a fresh schema of this test alone ("t_<name>_<random>", name lowercased with
// anything but letters, digits and '_' replaced) and returns the base URL with search_path set
// to it. The schema is dropped with everything in it when the test ends. It calls Need first.
func Schema(t testing.TB, name string) string {
	t.Helper()
	base := Need(t)
	var b [5]byte
	_, _ = rand.Read(b[:])
	name = unsafeChars.ReplaceAllString(strings.ToLower(name), "_")
	if len(name) > 40 {
		name = name[:40]
	}
	schema := "t_" + name + "_" + hex.EncodeToString(b[:])
	exec(t, base, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize())
	t.Cleanup(func() { exec(t, base, `DROP SCHEMA IF EXISTS `+pgx.Identifier{schema}.Sanitize()+` CASCADE`) })
	u, err := url.Parse(base)
	if err != nil {
		t.Fatalf("testpg: parsing %q: %v", base, err)
	}
	q := u.Query()
	q.Set("search_path", schema)
	u.RawQuery = q.Encode()
	return u.String()
}

func exec(t testing.TB, base, stmt string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, base)
	if err != nil {
		t.Fatalf("testpg: connecting: %v", err)
	}
	defer func() { _ = c.Close(ctx) }()
	if _, err := c.Exec(ctx, stmt); err != nil {
		t.Fatalf("testpg: %s: %v", stmt, err)
	}
}
