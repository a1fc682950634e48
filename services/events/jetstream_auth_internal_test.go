package events

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
)

// A secret file is read again at each connection: a rotated file applies from the next one,
// and a file that cannot be read leaves the last secret read in use.
func TestFileSecretRereadsTheFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "pw")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("old\n")
	s := &fileSecret{path: p, what: "password", log: slog.New(slog.DiscardHandler)}
	for _, step := range []struct {
		name   string
		change func()
		want   string
	}{
		{"first read, white space trimmed", func() {}, "old"},
		{"rotated", func() { write("  new\r\n") }, "new"},
		{"removed: the last one read", func() { _ = os.Remove(p) }, "new"},
		{"emptied: the last one read", func() { write("\n") }, "new"},
		{"rotated again", func() { write("newer") }, "newer"},
	} {
		step.change()
		if got := s.get(); got != step.want {
			t.Fatalf("%s: %q, want %q", step.name, got, step.want)
		}
	}
}
