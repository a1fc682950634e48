package auth_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/auth/authtest"
)

var quiet = slog.New(slog.DiscardHandler)

// edKey is a fresh Ed25519 key with its JWK.
type edKey struct {
	kid  string
	priv ed25519.PrivateKey
}

func newEdKey(t testing.TB, kid string) edKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return edKey{kid: kid, priv: priv}
}

func (k edKey) jwk() map[string]any { return authtest.JWK(k.kid, "EdDSA", k.priv.Public()) }

func (k edKey) token(sub string) string {
	return authtest.Sign("EdDSA", k.priv, map[string]any{"kid": k.kid}, claims(sub, "customer"))
}

// jwksSource is a JWKS URL source of issuer with fast timers for tests.
func jwksSource(url string, refresh, unknownKID time.Duration) auth.Source {
	return auth.Source{
		Issuer: issuer, Audiences: []string{audience}, JWKSURL: url,
		RefreshInterval: refresh, UnknownKIDInterval: unknownKID, FetchTimeout: time.Second,
	}
}

// eventually polls cond every 20ms until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestJWKSRotation(t *testing.T) {
	t.Parallel()
	a, b := newEdKey(t, "key-a"), newEdKey(t, "key-b")
	srv := authtest.NewJWKSServer(t, authtest.JWKS(a.jwk()))
	// Periodic refresh every second; unknown kids may refetch once per 5 minutes.
	f := newFixture(t, auth.Config{Sources: []auth.Source{jwksSource(srv.URL, time.Second, 5*time.Minute)}}, auth.Options{Logger: quiet}, nil)

	check(t, f.get(t, "/required", bearer(a.token("alice"))), want{status: 200, subject: "alice"})
	if n := srv.Fetches(); n != 1 {
		t.Fatalf("fetches after start = %d, want 1", n)
	}

	// A new key is published: its first token names an unknown kid, which refetches at once.
	srv.Set(http.StatusOK, authtest.JWKS(a.jwk(), b.jwk()))
	check(t, f.get(t, "/required", bearer(b.token("bob"))), want{status: 200, subject: "bob"})

	// Key a is withdrawn: once a refresh has run, its tokens are refused, also the cached one.
	srv.Set(http.StatusOK, authtest.JWKS(b.jwk()))
	tokenA := bearer(a.token("alice"))
	eventually(t, 10*time.Second, "a token of the removed key is still accepted", func() bool {
		return f.get(t, "/required", tokenA).status == http.StatusUnauthorized
	})
	check(t, f.get(t, "/required", tokenA), want{status: 401, challenge: challengeInvalid})
	check(t, f.get(t, "/required", bearer(b.token("bob"))), want{status: 200, subject: "bob"})
}

func TestJWKSUnknownKIDFloodIsBounded(t *testing.T) {
	t.Parallel()
	a := newEdKey(t, "key-a")
	srv := authtest.NewJWKSServer(t, authtest.JWKS(a.jwk()))
	f := newFixture(t, auth.Config{Sources: []auth.Source{jwksSource(srv.URL, time.Hour, 5*time.Minute)}}, auth.Options{Logger: quiet}, nil)

	const flood = 200
	for i := range flood {
		forged := authtest.Sign("EdDSA", a.priv, map[string]any{"kid": fmt.Sprintf("unknown-%d", i)}, claims("mallory"))
		r := f.get(t, "/required", bearer(forged))
		if r.status != http.StatusUnauthorized {
			t.Fatalf("token %d: status %d, want 401", i, r.status)
		}
	}
	// One fetch at start, one for the first unknown kid; the other 199 found the limiter empty.
	if n := srv.Fetches(); n != 2 {
		t.Fatalf("%d unknown kids caused %d fetches in all, want 2", flood, n)
	}
	check(t, f.get(t, "/required", bearer(a.token("alice"))), want{status: 200, subject: "alice"})
}

// TestJWKSUnknownKIDNeverQueues: with unknown_kid_interval equal to fetch_timeout (the
// smallest allowed), the unknown kids after the first are refused at once; none waits for the
// next fetch to come due (they used to, up to the fetch timeout each).
func TestJWKSUnknownKIDNeverQueues(t *testing.T) {
	t.Parallel()
	a := newEdKey(t, "key-a")
	srv := authtest.NewJWKSServer(t, authtest.JWKS(a.jwk()))
	src := jwksSource(srv.URL, time.Hour, 2*time.Second)
	src.FetchTimeout = 2 * time.Second
	f := newFixture(t, auth.Config{Sources: []auth.Source{src}}, auth.Options{Logger: quiet}, nil)
	for i := range 4 {
		start := time.Now()
		forged := authtest.Sign("EdDSA", a.priv, map[string]any{"kid": fmt.Sprintf("unknown-%d", i)}, claims("mallory"))
		if r := f.get(t, "/required", bearer(forged)); r.status != http.StatusUnauthorized {
			t.Fatalf("unknown kid %d: status %d, want 401", i, r.status)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("unknown kid %d answered after %v: it waited for the fetch limiter", i, took)
		}
	}
	if n := srv.Fetches(); n != 2 {
		t.Fatalf("4 unknown kids caused %d fetches in all, want 2 (start, first unknown kid)", n)
	}
}

func TestJWKSUnreachableAtStart(t *testing.T) {
	t.Parallel()
	t.Run("closed port", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		url := "http://" + ln.Addr().String() + "/jwks.json"
		_ = ln.Close()
		a := newEdKey(t, "key-a")
		start := time.Now()
		f := newFixture(t, auth.Config{Sources: []auth.Source{jwksSource(url, time.Hour, 5*time.Minute)}}, auth.Options{Logger: quiet}, nil)
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("New took %s with the JWKS down", d)
		}
		check(t, f.get(t, "/required", bearer(a.token("alice"))), want{status: 401, challenge: challengeInvalid})
	})
	t.Run("503 then up", func(t *testing.T) {
		t.Parallel()
		a := newEdKey(t, "key-a")
		srv := authtest.NewJWKSServer(t, nil)
		srv.Set(http.StatusServiceUnavailable, []byte(`{"error":"down"}`))
		// Unknown kids may refetch once per second, so the gateway recovers without a restart.
		f := newFixture(t, auth.Config{Sources: []auth.Source{jwksSource(srv.URL, time.Hour, time.Second)}}, auth.Options{Logger: quiet}, nil)
		check(t, f.get(t, "/required", bearer(a.token("alice"))), want{status: 401, challenge: challengeInvalid})
		srv.Set(http.StatusOK, authtest.JWKS(a.jwk()))
		eventually(t, 10*time.Second, "token still refused after the JWKS came up", func() bool {
			return f.get(t, "/required", bearer(a.token("alice"))).status == http.StatusOK
		})
	})
}

// TestJWKSFailedRefreshKeepsKeys: a refresh that fails (status, garbage, over-size body) keeps
// the last good keys. The cache is off so that every request uses the key set.
func TestJWKSFailedRefreshKeepsKeys(t *testing.T) {
	t.Parallel()
	a, b := newEdKey(t, "key-a"), newEdKey(t, "key-b")
	huge := `{"keys":[` + strings.TrimSuffix(strings.TrimPrefix(string(authtest.JWKS(b.jwk())), `{"keys":[`), `]}`) +
		`],"padding":"` + strings.Repeat("x", 64<<10) + `"}`
	tests := []struct {
		name   string
		status int
		body   []byte
	}{
		{"500", http.StatusInternalServerError, []byte("oops")},
		{"not JSON", http.StatusOK, []byte("<html>")},
		{"over max_jwks_bytes", http.StatusOK, []byte(huge)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := authtest.NewJWKSServer(t, authtest.JWKS(a.jwk()))
			src := jwksSource(srv.URL, time.Second, time.Hour)
			src.MaxJWKSBytes = 16 << 10
			reg := prometheus.NewRegistry()
			f := newFixture(t, auth.Config{Sources: []auth.Source{src}, Cache: auth.Cache{Disabled: true}},
				auth.Options{Logger: quiet, Registerer: reg}, nil)
			check(t, f.get(t, "/required", bearer(a.token("alice"))), want{status: 200, subject: "alice"})

			srv.Set(tt.status, tt.body)
			before := srv.Fetches()
			eventually(t, 10*time.Second, "no refresh ran", func() bool { return srv.Fetches() >= before+2 })
			check(t, f.get(t, "/required", bearer(a.token("alice"))), want{status: 200, subject: "alice"})
			check(t, f.get(t, "/required", bearer(b.token("bob"))), want{status: 401, challenge: challengeInvalid})
			if n := counterValue(t, reg, "gateway_auth_jwks_fetch_total", "error"); n < 1 {
				t.Fatalf("failed fetches counted = %v, want >= 1", n)
			}
		})
	}
}

// counterValue returns the value of the series of name whose result label is result.
func counterValue(t testing.TB, reg *prometheus.Registry, name, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestJWKSEncryptionKeyRefused: a key published with "use": "enc" never verifies a token.
func TestJWKSEncryptionKeyRefused(t *testing.T) {
	t.Parallel()
	sig, enc := newEdKey(t, "key-sig"), newEdKey(t, "key-enc")
	encJWK := enc.jwk()
	encJWK["use"] = "enc"
	srv := authtest.NewJWKSServer(t, authtest.JWKS(sig.jwk(), encJWK))
	f := newFixture(t, auth.Config{Sources: []auth.Source{jwksSource(srv.URL, time.Hour, 5*time.Minute)}}, auth.Options{Logger: quiet}, nil)
	check(t, f.get(t, "/required", bearer(sig.token("alice"))), want{status: 200, subject: "alice"})
	check(t, f.get(t, "/required", bearer(enc.token("mallory"))), want{status: 401, challenge: challengeInvalid})
}

// TestCacheNeverOutlivesExp: a cached token is served until its exp; after it, the token is
// verified again and refused once past the leeway.
func TestCacheNeverOutlivesExp(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	f := newFixture(t, staticConfig(t), auth.Options{Registerer: reg}, nil)
	exp := t0.Add(time.Minute)
	token := bearer(edToken(with(claims("alice"), "exp", exp.Unix())))
	steps := []struct {
		at   time.Time
		want want
		hits float64 // cache hits so far
	}{
		{t0, want{status: 200, subject: "alice"}, 0},
		{t0.Add(30 * time.Second), want{status: 200, subject: "alice"}, 1},
		{exp.Add(-time.Second), want{status: 200, subject: "alice"}, 2},
		{exp.Add(auth.DefaultLeeway - time.Second), want{status: 200, subject: "alice"}, 2}, // verified again, inside leeway
		{exp.Add(auth.DefaultLeeway + time.Second), want{status: 401, challenge: challengeExpired}, 2},
	}
	for i, s := range steps {
		f.clock.Set(s.at)
		check(t, f.get(t, "/required", token), s.want)
		if hits := counterValue(t, reg, "gateway_auth_token_cache_total", "hit"); hits != s.hits {
			t.Fatalf("step %d: cache hits %v, want %v", i, hits, s.hits)
		}
	}
}

// TestJWKSRedirectToPlainHTTPRefused: a JWKS URL that redirects to plain http on a
// non-loopback host is not followed, so no keys load from it.
func TestJWKSRedirectToPlainHTTPRefused(t *testing.T) {
	t.Parallel()
	a := newEdKey(t, "key-a")
	keysSrv := authtest.NewJWKSServer(t, authtest.JWKS(a.jwk()))
	tests := []struct {
		name   string
		target string
		want   want
	}{
		{"loopback target is followed", keysSrv.URL, want{status: 200, subject: "alice"}},
		// Refused before any lookup or dial (.invalid never resolves anyway).
		{"plain http elsewhere is refused", "http://jwks.invalid/jwks.json", want{status: 401, challenge: challengeInvalid}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			redirectSrv := httptest.NewServer(http.RedirectHandler(tt.target, http.StatusFound))
			t.Cleanup(redirectSrv.Close)
			f := newFixture(t, auth.Config{Sources: []auth.Source{jwksSource(redirectSrv.URL+"/jwks.json", time.Hour, 5*time.Minute)}}, auth.Options{Logger: quiet}, nil)
			check(t, f.get(t, "/required", bearer(a.token("alice"))), tt.want)
		})
	}
}
