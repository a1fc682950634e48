package main

import (
	"bytes"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/internal/devkey"
)

func TestRun(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "devkeys")
	tests := []struct {
		name     string
		args     []string
		code     int
		status   int // of the token at the dev stack's auth stage; 0 when none is printed
		identity string
	}{
		{"customer", []string{"-sub", "alice", "-roles", "customer"}, 0, 200, "alice|customer"},
		{"admin and customer", []string{"-sub", "root", "-roles", "admin, customer", "-ttl", "15m"}, 0, 200, "root|admin,customer"},
		{"no roles", []string{"-sub", "nina"}, 0, 200, "nina|"},
		{"expired", []string{"-sub", "alice", "-ttl", "-1m"}, 0, 401, ""},
		{"other audience", []string{"-sub", "alice", "-aud", "other-api"}, 0, 401, ""},
		{"other issuer", []string{"-sub", "alice", "-iss", "someone"}, 0, 401, ""},
		{"no subject", []string{"-roles", "admin"}, 2, 0, ""},
		{"zero ttl", []string{"-sub", "alice", "-ttl", "0s"}, 2, 0, ""},
		{"unknown flag", []string{"-sub", "alice", "-admin"}, 2, 0, ""},
		{"stray argument", []string{"-sub", "alice", "extra"}, 2, 0, ""},
		{"extra claims", []string{"-sub", "dave", "-claim", "tier=beta", "-claim", "team=blue"}, 0, 200, "dave||team=blue,tier=beta"},
		{"claim without value", []string{"-sub", "dave", "-claim", "tier"}, 2, 0, ""},
		{"claim replacing sub", []string{"-sub", "dave", "-claim", "sub=root"}, 1, 0, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(append(tt.args, "-keys", dir, "-jwks", ""), &stdout, &stderr) // TestTrustCheck checks trust
			if code != tt.code {
				t.Fatalf("exit %d (stderr %q), want %d", code, stderr.String(), tt.code)
			}
			if tt.status == 0 {
				if stdout.Len() != 0 || stderr.Len() == 0 {
					t.Fatalf("stdout %q stderr %q: want only a message on stderr", stdout.String(), stderr.String())
				}
				return
			}
			token := strings.TrimSuffix(stdout.String(), "\n")
			if strings.Count(token, ".") != 2 || strings.ContainsAny(token, " \n") {
				t.Fatalf("stdout %q is not one compact JWS line", stdout.String())
			}
			status, id := admit(t, dir, token)
			if status != tt.status || id != tt.identity {
				t.Fatalf("dev stack answered %d %q, want %d %q", status, id, tt.status, tt.identity)
			}
		})
	}
}

// admit runs token through the auth stage configured as the dev stack configures it.
func admit(t *testing.T, dir, token string) (int, string) {
	t.Helper()
	k, err := devkey.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	a, err := auth.New(auth.Config{Sources: []auth.Source{k.AuthSource()}}, auth.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	var got string
	h := a.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		id, _ := identity.FromContext(r.Context())
		got = id.Subject + "|" + strings.Join(id.Roles, ",")
		if len(id.Claims) > 0 {
			var claims []string
			for _, k := range slices.Sorted(maps.Keys(id.Claims)) {
				claims = append(claims, k+"="+id.Claims[k])
			}
			got += "|" + strings.Join(claims, ",")
		}
	}))
	req := httptest.NewRequest(http.MethodGet, "/v1/orders", nil)
	req = req.WithContext(policy.NewContext(req.Context(), &policy.Route{}))
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, got
}
