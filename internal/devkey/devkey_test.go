package devkey_test

import (
	"encoding/json"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/internal/devkey"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestLoadOrCreate(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data", "devkeys")
	k1, err := devkey.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	k2, err := devkey.LoadOrCreate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if k1.KID() != k2.KID() || !k1.PublicKey().Equal(k2.PublicKey()) {
		t.Fatal("the key changed across restarts")
	}
	perm := func(p string) fs.FileMode {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}
	if m := perm(dir); m != 0o700 {
		t.Fatalf("folder mode %v, want 0700", m)
	}
	for _, name := range []string{devkey.PrivateKeyFile, devkey.PublicKeyFile, devkey.JWKSFile} {
		if m := perm(filepath.Join(dir, name)); m != 0o600 {
			t.Fatalf("%s mode %v, want 0600", name, m)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 3 {
		t.Fatalf("folder holds %d files, want 3 (no temporary files left)", len(entries))
	}

	// The JWKS holds the public key only, with its kid.
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(k1.JWKS(), &set); err != nil || len(set.Keys) != 1 {
		t.Fatalf("JWKS %s: %v", k1.JWKS(), err)
	}
	jwk := set.Keys[0]
	if jwk["kid"] != k1.KID() || jwk["kty"] != "OKP" || jwk["crv"] != "Ed25519" || jwk["alg"] != "EdDSA" || jwk["x"] == "" {
		t.Fatalf("JWK %v", jwk)
	}
	if _, ok := jwk["d"]; ok {
		t.Fatal("JWKS carries the private key")
	}
}

func TestLoadOrCreateTightensModes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if _, err := devkey.LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	priv := filepath.Join(dir, devkey.PrivateKeyFile)
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(priv, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := devkey.LoadOrCreate(dir); err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]fs.FileMode{dir: 0o700, priv: 0o600} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != want {
			t.Fatalf("%s mode %v, want %v", path, st.Mode().Perm(), want)
		}
	}
}

func TestLoadOrCreateConcurrently(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const n = 8
	kids := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			k, err := devkey.LoadOrCreate(dir)
			if err != nil {
				t.Error(err)
				return
			}
			kids[i] = k.KID()
		})
	}
	wg.Wait()
	for _, kid := range kids[1:] {
		if kid != kids[0] {
			t.Fatalf("concurrent starts made different keys: %v", kids)
		}
	}
}

func TestLoadOrCreateRefusesAForeignKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, devkey.PrivateKeyFile), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := devkey.LoadOrCreate(dir); err == nil {
		t.Fatal("loaded a file that holds no key")
	}
}

// TestMintedTokensPassAuth: the dev stack's auth source accepts what Mint makes, and refuses
// what it must.
func TestMintedTokensPassAuth(t *testing.T) {
	t.Parallel()
	k, err := devkey.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	a, err := auth.New(auth.Config{Sources: []auth.Source{k.AuthSource()}}, auth.Options{
		Clock: func() time.Time { return now }, Logger: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	srv := httptest.NewServer(policyRoute(a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id, _ := identity.FromContext(r.Context())
		_, _ = io.WriteString(w, id.Subject+"|"+strings.Join(id.Roles, ","))
	}))))
	defer srv.Close()

	tests := []struct {
		name   string
		claims devkey.Claims
		status int
		body   string
	}{
		{"customer", devkey.Claims{Subject: "alice", Roles: []string{"customer"}, Now: now}, 200, "alice|customer"},
		{"admin", devkey.Claims{Subject: "root", Roles: []string{"admin", "customer"}, Now: now}, 200, "root|admin,customer"},
		{"expired", devkey.Claims{Subject: "alice", TTL: -time.Minute, Now: now}, 401, ""},
		{"other audience", devkey.Claims{Subject: "alice", Audience: "other", Now: now}, 401, ""},
		{"other issuer", devkey.Claims{Subject: "alice", Issuer: "someone", Now: now}, 401, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token, err := k.Mint(tt.claims)
			if err != nil {
				t.Fatal(err)
			}
			req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/orders", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status || (tt.status == 200 && string(body) != tt.body) {
				t.Fatalf("status %d body %q, want %d %q", resp.StatusCode, body, tt.status, tt.body)
			}
		})
	}
	if _, err := k.Mint(devkey.Claims{}); err == nil {
		t.Fatal("minted a token without subject")
	}
}

func policyRoute(next http.Handler) http.Handler {
	route := &policy.Route{Policy: policy.Policy{Auth: policy.AuthRequired}}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(policy.NewContext(r.Context(), route)))
	})
}

func TestHandler(t *testing.T) {
	t.Parallel()
	k, err := devkey.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(devkey.JWKSPath, k.Handler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	tests := []struct {
		method string
		status int
		body   string
	}{
		{http.MethodGet, 200, string(k.JWKS())},
		{http.MethodHead, 200, ""},
		{http.MethodPost, 405, ""},
	}
	for _, tt := range tests {
		t.Run(tt.method, func(t *testing.T) {
			req, _ := http.NewRequest(tt.method, srv.URL+devkey.JWKSPath, nil)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.status)
			}
			if tt.status != 200 {
				if !strings.Contains(string(body), `"code"`) {
					t.Fatalf("error body %q is not a google.rpc.Status", body)
				}
				return
			}
			if string(body) != tt.body {
				t.Fatalf("body %q, want %q", body, tt.body)
			}
			if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
				t.Fatalf("Cache-Control %q", cc)
			}
		})
	}
}

// TestHandlerServesAJWKSURLSource: the published JWKS is what an auth JWKS URL source fetches,
// as a second gateway trusting the dev stack would.
func TestHandlerServesAJWKSURLSource(t *testing.T) {
	t.Parallel()
	k, err := devkey.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(devkey.JWKSPath, k.Handler())
	jwks := httptest.NewServer(mux)
	defer jwks.Close()
	a, err := auth.New(auth.Config{Sources: []auth.Source{{
		Issuer: devkey.Issuer, Audiences: []string{devkey.Audience}, JWKSURL: jwks.URL + devkey.JWKSPath,
	}}}, auth.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	token, err := k.Mint(devkey.Claims{Subject: "alice", Roles: []string{"customer"}})
	if err != nil {
		t.Fatal(err)
	}
	var got identity.Identity
	h := policyRoute(a.Middleware(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		got, _ = identity.FromContext(r.Context())
	})))
	req := httptest.NewRequest(http.MethodGet, "/v1/orders", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK || got.Subject != devkey.Issuer+"|alice" { // a source of its own: namespaced
		t.Fatalf("status %d identity %+v", rec.Code, got)
	}
}
