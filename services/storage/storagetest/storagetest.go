// Package storagetest is what the stores' tests share to run on both dialects: where a test's
// store lives, an SQLite file or a PostgreSQL schema of the test's own (internal/testpg).
package storagetest

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/acme/shopgate/internal/testpg"
	"github.com/acme/shopgate/services/storage"
)

// PostgresPrefix starts the name of the tests that run on PostgreSQL (a package's TestPostgres
// runs its store tests again as subtests).
const PostgresPrefix = "TestPostgres/"

var urls sync.Map // store path -> PostgreSQL URL

// Source is where the store a test opens at path lives: the SQLite file, or, for a test under
// PostgresPrefix, a PostgreSQL schema of its own (SourceOn).
func Source(t testing.TB, path string) storage.Source {
	t.Helper()
	return SourceOn(t, path, strings.HasPrefix(t.Name(), PostgresPrefix))
}

// SourceOn is the SQLite file at path, or with postgres a PostgreSQL schema named after the
// file, made at the first call for path and the same at every later one (a store opened again
// finds its data); it is dropped when the test that made it ends.
func SourceOn(t testing.TB, path string, postgres bool) storage.Source {
	t.Helper()
	if !postgres {
		return storage.Source{Path: path}
	}
	if u, ok := urls.Load(path); ok {
		return storage.Source{URL: u.(string)}
	}
	u := testpg.Schema(t, strings.TrimSuffix(filepath.Base(path), ".db"))
	urls.Store(path, u)
	return storage.Source{URL: u}
}
