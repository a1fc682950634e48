package auth_test

import (
	"encoding/json"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/auth/authtest"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// t0 is the fixed time of the tests' clock.
var t0 = time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)

const (
	issuer   = "https://idp.test"
	pemIss   = "https://pem.test"
	hmacIss  = "https://hmac.test"
	audience = "shop-api"
	secret   = "0123456789abcdef0123456789abcdef-test-secret"
	// apiKey's SHA-256 is apiKeyHash.
	apiKey      = "sk_test_billing_3f9a1c"
	otherAPIKey = "sk_test_reports_77e0b2"
)

var keys = sync.OnceValue(func() *authtest.Keys {
	k, err := authtest.NewKeys()
	if err != nil {
		panic(err)
	}
	return k
})

// clock is a settable time source for auth.Options.Clock.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.Set(t); return c }
func (c *clock) Now() time.Time   { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Set(t time.Time)  { c.ns.Store(t.UnixNano()) }

// claims are valid claims of issuer for sub at t0.
func claims(sub string, roles ...string) map[string]any {
	c := map[string]any{
		"iss": issuer, "aud": audience, "sub": sub,
		"iat": t0.Unix(), "exp": t0.Add(time.Hour).Unix(),
	}
	if roles != nil {
		c["roles"] = roles
	}
	return c
}

// with returns a copy of m with kv applied; a nil value removes the key.
func with(m map[string]any, kv ...any) map[string]any {
	out := maps.Clone(m)
	for i := 0; i < len(kv); i += 2 {
		k := kv[i].(string)
		if kv[i+1] == nil {
			delete(out, k)
		} else {
			out[k] = kv[i+1]
		}
	}
	return out
}

// Signed tokens of each trusted key of the static fixture.
func rsaToken(c map[string]any) string {
	return authtest.Sign("RS256", keys().RSA, map[string]any{"kid": "rsa-1"}, c)
}
func ecToken(c map[string]any) string {
	return authtest.Sign("ES256", keys().EC, map[string]any{"kid": "ec-1"}, c)
}
func edToken(c map[string]any) string {
	return authtest.Sign("EdDSA", keys().Ed, map[string]any{"kid": "ed-1"}, c)
}

// staticConfig trusts: issuer through a JWKS file (rsa-1, ec-1, ed-1), pemIss through one PEM
// RSA key without kid, hmacIss through a shared secret; and one API key.
func staticConfig(t testing.TB) auth.Config {
	t.Helper()
	dir := t.TempDir()
	k := keys()
	jwksPath := writeFile(t, dir, "jwks.json", authtest.JWKS(
		authtest.JWK("rsa-1", "RS256", &k.RSA.PublicKey),
		authtest.JWK("ec-1", "ES256", &k.EC.PublicKey),
		authtest.JWK("ed-1", "", k.Ed.Public()),
	))
	pemPath := writeFile(t, dir, "rsa.pub.pem", authtest.PublicPEM(&k.RSA.PublicKey))
	secretPath := writeFile(t, dir, "secret", []byte(secret+"\n"))
	return auth.Config{
		Sources: []auth.Source{
			{Issuer: issuer, Audiences: []string{audience}, JWKSFile: jwksPath},
			{Issuer: pemIss, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: pemPath}}},
			{Issuer: hmacIss, Audiences: []string{audience}, SecretFile: secretPath, ScopeClaim: "scope"},
		},
		APIKeys: []auth.APIKey{
			{Name: "billing", SHA256: sha256Hex(apiKey), Subject: "svc-billing", Roles: []string{"admin"}},
			{Name: "reports", SHA256: sha256Hex(otherAPIKey), Subject: "svc-reports"},
		},
	}
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// routes are the policies the fixture's paths run under.
var routes = map[string]*policy.Route{
	"/none":           {RPC: "/t.T/None", Policy: policy.Policy{Auth: policy.AuthNone}},
	"/optional":       {RPC: "/t.T/Optional", Policy: policy.Policy{Auth: policy.AuthOptional}},
	"/required":       {RPC: "/t.T/Required", Policy: policy.Policy{Auth: policy.AuthRequired}},
	"/admin":          {RPC: "/t.T/Admin", Policy: policy.Policy{Roles: []string{"admin"}}},
	"/staff":          {RPC: "/t.T/Staff", Policy: policy.Policy{Roles: []string{"admin", "support"}}},
	"/optional-admin": {RPC: "/t.T/OptAdmin", Policy: policy.Policy{Auth: policy.AuthOptional, Roles: []string{"admin"}}},
	"/none-admin":     {RPC: "/t.T/NoneAdmin", Policy: policy.Policy{Auth: policy.AuthNone, Roles: []string{"admin"}}},
	// "/unrouted" has no route in its context.
}

// seen is what the handler behind the middleware answers: the identity it received.
type seen struct {
	HasIdentity bool     `json:"has_identity"`
	Source      string   `json:"source"`
	Subject     string   `json:"subject"`
	Roles       []string `json:"roles"`
	Method      string   `json:"method"`
	BodyReads   int64    `json:"body_reads"`
}

// fixture is a real HTTP server running the middleware in front of a recording handler.
type fixture struct {
	a      *auth.Authenticator
	srv    *httptest.Server
	client *http.Client
	clock  *clock
	reads  atomic.Int64 // body reads of the last refused or served request
	served atomic.Int64 // requests that reached the handler
}

// newFixture builds the Authenticator from cfg (the clock at t0 unless opts has one) and
// serves it; srvCfg, when not nil, adjusts the http.Server (header limits).
func newFixture(t testing.TB, cfg auth.Config, opts auth.Options, srvCfg func(*http.Server)) *fixture {
	t.Helper()
	f := &fixture{clock: newClock(t0)}
	if opts.Clock == nil {
		opts.Clock = f.clock.Now
	}
	a, err := auth.New(cfg, opts)
	if err != nil {
		t.Fatalf("auth.New: %v", err)
	}
	t.Cleanup(func() { _ = a.Close() })
	f.a = a
	f.srv = httptest.NewUnstartedServer(f.handler())
	if srvCfg != nil {
		srvCfg(f.srv.Config)
	}
	f.srv.Start()
	f.client = f.srv.Client()
	t.Cleanup(func() { f.client.CloseIdleConnections(); f.srv.Close() })
	return f
}

// handler stores the route of the path, counts body reads, and runs the middleware in front
// of a handler that reports the identity it received.
func (f *fixture) handler() http.Handler {
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.served.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		id, ok := identity.FromContext(r.Context())
		s := seen{HasIdentity: ok, Source: id.Source, Subject: id.Subject, Roles: id.Roles, Method: string(id.Method), BodyReads: f.reads.Load()}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s)
	})
	mw := f.a.Middleware(inner)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.reads.Store(0)
		r.Body = &countingBody{ReadCloser: r.Body, reads: &f.reads}
		if rt, ok := routes[r.URL.Path]; ok {
			r = r.WithContext(policy.NewContext(r.Context(), rt))
		}
		mw.ServeHTTP(w, r)
	})
}

// countingBody counts Read calls.
type countingBody struct {
	io.ReadCloser
	reads *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	b.reads.Add(1)
	return b.ReadCloser.Read(p)
}

// response is one answer of the fixture.
type response struct {
	status    int
	challenge string
	ctype     string
	seen      seen
	rpcCode   int
	message   string
}

// get sends a GET to path with hdr (each value a separate header line).
func (f *fixture) get(t testing.TB, path string, hdr http.Header) response {
	t.Helper()
	return f.do(t, http.MethodGet, path, hdr, nil)
}

func (f *fixture) do(t testing.TB, method, path string, hdr http.Header, body io.Reader) response {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	resp, err := f.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	r := response{status: resp.StatusCode, challenge: resp.Header.Get("WWW-Authenticate"), ctype: resp.Header.Get("Content-Type")}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, &r.seen); err != nil {
			t.Fatalf("handler answer %q: %v", raw, err)
		}
		return r
	}
	var st struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		t.Fatalf("error body %q is not a google.rpc.Status: %v", raw, err)
	}
	r.rpcCode, r.message = st.Code, st.Message
	return r
}

// bearer returns a header with one Authorization: Bearer token.
func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// The challenges the middleware sends.
const (
	challengeNone     = `Bearer realm="shop"`
	challengeInvalid  = `Bearer realm="shop", error="invalid_token", error_description="invalid token"`
	challengeExpired  = `Bearer realm="shop", error="invalid_token", error_description="token expired"`
	challengeMultiple = `Bearer realm="shop", error="invalid_request", error_description="multiple credentials"`
	challengeAPIKey   = `Bearer realm="shop", error="invalid_token", error_description="invalid API key"`
	challengeRole     = `Bearer realm="shop", error="insufficient_scope"`
)

// want is the expected outcome of one request.
type want struct {
	status    int
	challenge string
	subject   string   // for 200: the token's sub or the key's subject, "" for anonymous (see sub)
	roles     []string // for 200 with a subject
}

// sub is the sub (or API key subject) inside a passport subject: "<source>|<sub>", or the
// subject itself for a source with plain subjects. TestSubjectsAreNamespaced checks the form.
func sub(source, subject string) string {
	if rest, ok := strings.CutPrefix(subject, source+"|"); ok {
		return rest
	}
	return subject
}

// check compares r with w; 401 and 403 must be google.rpc.Status JSON with the right code.
func check(t testing.TB, r response, w want) {
	t.Helper()
	if r.status != w.status {
		t.Fatalf("status = %d (%q, %q), want %d", r.status, r.message, r.challenge, w.status)
	}
	switch w.status {
	case http.StatusOK:
		if sub(r.seen.Source, r.seen.Subject) != w.subject || r.seen.HasIdentity != (w.subject != "") {
			t.Fatalf("handler saw %+v, want subject %q", r.seen, w.subject)
		}
		if w.roles != nil && strings.Join(r.seen.Roles, ",") != strings.Join(w.roles, ",") {
			t.Fatalf("roles = %v, want %v", r.seen.Roles, w.roles)
		}
	case http.StatusUnauthorized, http.StatusForbidden:
		wantCode := 16 // UNAUTHENTICATED
		if w.status == http.StatusForbidden {
			wantCode = 7 // PERMISSION_DENIED
		}
		if r.rpcCode != wantCode || r.ctype != "application/json" || r.message == "" {
			t.Fatalf("body code %d message %q type %q, want code %d as application/json", r.rpcCode, r.message, r.ctype, wantCode)
		}
		if r.challenge != w.challenge {
			t.Fatalf("WWW-Authenticate = %q, want %q", r.challenge, w.challenge)
		}
	}
}

func sha256Hex(s string) string { return authtest.SHA256Hex(s) }
