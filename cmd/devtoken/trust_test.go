package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/internal/devkey"
)

// TestTrustCheck: devtoken mints with the key the stack trusts, found through the JWKS the stack
// serves or a JWKS file, and refuses any other key, or no key, with a message that says why.
func TestTrustCheck(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	stackDir := filepath.Join(root, "stack", "devkeys") // what the running stack uses
	stack, err := devkey.LoadOrCreate(stackDir)
	if err != nil {
		t.Fatal(err)
	}
	foreignDir := filepath.Join(root, "elsewhere", "devkeys") // another folder's key
	if _, err := devkey.LoadOrCreate(foreignDir); err != nil {
		t.Fatal(err)
	}
	stackKID := kidIn(t, stackDir)
	foreignKID := kidIn(t, foreignDir)

	mux := http.NewServeMux()
	mux.Handle(devkey.JWKSPath, stack.Handler()) // as cmd/shop serves it
	srv := httptest.NewServer(mux)
	defer srv.Close()
	served := srv.URL + devkey.JWKSPath
	gone := httptest.NewServer(http.NotFoundHandler())
	goneURL := gone.URL + devkey.JWKSPath
	gone.Close()                                       // nothing listens there any more
	trustedFile := filepath.Join(root, "trusted.json") // a gateway YAML's jwks_file
	published, err := os.ReadFile(filepath.Join(stackDir, devkey.JWKSFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(trustedFile, published, 0o600); err != nil {
		t.Fatal(err)
	}
	missingDir := filepath.Join(root, "none", "devkeys")

	tests := []struct {
		name  string
		keys  string
		jwks  string
		code  int
		wants []string // in stderr when refused
	}{
		{"stack key, served JWKS", stackDir, served, 0, nil},
		{"stack key, trusted file", stackDir, trustedFile, 0, nil},
		{"foreign key, served JWKS", foreignDir, served, 1, []string{"not one the gateway trusts", foreignKID, stackKID, "-keys"}},
		{"foreign key, trusted file", foreignDir, trustedFile, 1, []string{"not one the gateway trusts", foreignKID, stackKID}},
		{"no key, served JWKS", missingDir, served, 1, []string{"no development key in " + missingDir, stackKID}},
		{"no stack", stackDir, goneURL, 1, []string{"cannot read the JWKS", "make run", "-jwks"}},
		{"not a JWKS", stackDir, srv.URL + "/other", 1, []string{"cannot read the JWKS", "404"}},
		{"no such file", stackDir, filepath.Join(root, "nope.json"), 1, []string{"cannot read the JWKS", "nope.json"}},
		{"check off", foreignDir, "", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run([]string{"-sub", "alice", "-roles", "customer", "-keys", tt.keys, "-jwks", tt.jwks}, &stdout, &stderr)
			if code != tt.code {
				t.Fatalf("exit %d (stderr %q), want %d", code, stderr.String(), tt.code)
			}
			if tt.code != 0 {
				if stdout.Len() != 0 {
					t.Fatalf("printed %q with a refused key", stdout.String())
				}
				for _, w := range tt.wants {
					if !strings.Contains(stderr.String(), w) {
						t.Errorf("stderr %q lacks %q", stderr.String(), w)
					}
				}
				return
			}
			// What it minted passes the auth stage trusting the key it was checked against.
			token := strings.TrimSpace(stdout.String())
			if status, id := admit(t, tt.keys, token); status != 200 || id != "alice|customer" {
				t.Fatalf("the key's stack answered %d %q", status, id)
			}
		})
	}
	if _, err := os.Stat(missingDir); !os.IsNotExist(err) {
		t.Errorf("a refused run made a key folder %s (%v)", missingDir, err)
	}
}

// TestInit: -init makes the key once and prints its kid and JWKS file, which a gateway trusts.
func TestInit(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "devkeys")
	var lines []string
	for range 2 {
		var stdout, stderr bytes.Buffer
		if code := run([]string{"-init", "-keys", dir}, &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
		lines = append(lines, stdout.String())
	}
	want := kidIn(t, dir) + " " + filepath.Join(dir, devkey.JWKSFile) + "\n"
	if lines[0] != want || lines[1] != want {
		t.Fatalf("-init printed %q then %q, want %q twice (the same key)", lines[0], lines[1], want)
	}
	for _, args := range [][]string{{"-init", "-sub", "alice"}, {"-init", "extra"}} {
		if code := run(append(args, "-keys", dir), &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
			t.Errorf("%q: exit %d, want 2", args, code)
		}
	}
}

// kidIn is the kid of the key in dir, from its JWKS file.
func kidIn(t *testing.T, dir string) string {
	t.Helper()
	kids, err := trustedKIDs(filepath.Join(dir, devkey.JWKSFile))
	if err != nil || len(kids) != 1 {
		t.Fatalf("kids of %s: %v %v", dir, kids, err)
	}
	for k := range kids {
		return k
	}
	return ""
}
