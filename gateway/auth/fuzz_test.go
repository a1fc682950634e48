package auth_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/auth/authtest"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
)

// FuzzAuthorization sends arbitrary Authorization values through the middleware. It must
// answer 200 or 401 and never panic, and it admits only the exact valid tokens of the seed
// corpus: base64 is decoded strictly and Ed25519 and RSA signatures are not malleable (an
// ECDSA signature (r, n-s) also verifies, which random mutation does not find; if a fuzzer
// ever does, that token carries the same verified claims).
func FuzzAuthorization(f *testing.F) {
	edValid := edToken(claims("alice", "customer"))
	ecValid, rsaValid := ecToken(claims("bob")), rsaToken(claims("carol")) // ECDSA signing is randomized: sign once
	valid := map[string]bool{edValid: true, ecValid: true, rsaValid: true}
	seeds := []string{
		"Bearer " + edValid,
		"bearer " + edValid,
		"Bearer " + edValid[:len(edValid)-2],
		"Bearer " + strings.Replace(edValid, ".", "..", 1),
		"Bearer " + edToken(with(claims("alice"), "exp", t0.Add(-time.Hour).Unix())),
		"Bearer " + ecValid,
		"Bearer " + rsaValid,
		"Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhZG1pbiJ9.",
		"Bearer ",
		"Basic YTpi",
		"",
		"Bearer a.b.c",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	cfg := staticConfig(f)
	c := newClock(t0)
	a, err := auth.New(cfg, auth.Options{Clock: c.Now, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = a.Close() })
	var got identity.Identity
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = identity.FromContext(r.Context())
	}))
	route := &policy.Route{Policy: policy.Policy{Auth: policy.AuthRequired}}
	f.Fuzz(func(t *testing.T, authz string) {
		req := httptest.NewRequest(http.MethodGet, "/v1/orders", nil)
		req = req.WithContext(policy.NewContext(req.Context(), route))
		req.Header["Authorization"] = []string{authz}
		rec := httptest.NewRecorder()
		got = identity.Identity{}
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if len(authz) < 7 || !strings.EqualFold(authz[:7], "Bearer ") || !valid[authz[7:]] {
				t.Fatalf("admitted %q as %+v", authz, got)
			}
			if got.Subject == "" {
				t.Fatal("admitted without identity")
			}
		case http.StatusUnauthorized:
			if !strings.HasPrefix(rec.Header().Get("WWW-Authenticate"), `Bearer realm="shop"`) {
				t.Fatalf("401 without challenge: %q", rec.Header().Get("WWW-Authenticate"))
			}
		default:
			t.Fatalf("status %d for %q", rec.Code, authz)
		}
	})
}

// FuzzCredentials sends arbitrary sets of credential headers through the middleware: 0, 1 or 2
// Authorization values, 0, 1 or 2 X-API-Key values and a query string (which never carries a
// credential). It must answer 200 or 401 and never panic; it answers 200 exactly when the
// request carries one credential header in all and that one is valid (a seed token or API
// key); two credentials are refused as such, valid or not; every 401 carries a Bearer
// challenge, and the 401 is one of the fixed answers, so that nothing of what the client sent
// comes back in it.
func FuzzCredentials(f *testing.F) {
	k := keys()
	good := claims("alice", "customer")
	edValid := edToken(good)
	ecValid, rsaValid := ecToken(claims("bob")), rsaToken(claims("carol")) // ECDSA signing is randomized: sign once
	pemValid := authtest.Sign("RS256", k.RSA, nil, with(claims("dave"), "iss", pemIss))
	hmacValid := authtest.Sign("HS256", []byte(secret), nil, with(claims("erin"), "iss", hmacIss))
	expired := edToken(with(good, "exp", t0.Add(-time.Hour).Unix()))
	validTokens := map[string]string{edValid: "alice", ecValid: "bob", rsaValid: "carol", pemValid: "dave", hmacValid: "erin"}
	validKeys := map[string]string{apiKey: "svc-billing", otherAPIKey: "svc-reports"}

	type seed struct {
		nAuth        uint8
		auth1, auth2 string
		nKey         uint8
		key1, key2   string
		query        string
	}
	seeds := []seed{
		{nAuth: 1, auth1: "Bearer " + edValid},
		{nAuth: 1, auth1: "bearer " + ecValid},
		{nAuth: 1, auth1: "BEARER " + rsaValid},
		{nAuth: 1, auth1: "Bearer " + pemValid},
		{nAuth: 1, auth1: "Bearer " + hmacValid},
		{nAuth: 1, auth1: "Bearer " + expired},
		{nAuth: 1, auth1: "Bearer " + edValid[:len(edValid)-1]},
		{nAuth: 1, auth1: "Bearer  " + edValid},
		{nAuth: 1, auth1: edValid},
		{nAuth: 1, auth1: "Basic YTpi"},
		{nAuth: 1, auth1: "Bearer"},
		{nAuth: 1},
		{nKey: 1, key1: apiKey},
		{nKey: 1, key1: otherAPIKey},
		{nKey: 1, key1: apiKey + " "},
		{nKey: 1, key1: sha256Hex(apiKey)},
		{nKey: 1},
		{nKey: 1, key1: "Bearer " + edValid},
		{nAuth: 1, auth1: "Bearer " + apiKey},
		{nAuth: 2, auth1: "Bearer " + edValid, auth2: "Bearer " + edValid},
		{nAuth: 2, auth1: "Bearer " + edValid, auth2: "Bearer " + ecValid},
		{nKey: 2, key1: apiKey, key2: apiKey},
		{nKey: 2, key1: apiKey, key2: otherAPIKey},
		{nAuth: 1, auth1: "Bearer " + edValid, nKey: 1, key1: apiKey},
		{nAuth: 1, auth1: "Bearer " + edValid, nKey: 1, key1: "nope"},
		{nAuth: 1, auth1: "Basic YTpi", nKey: 1, key1: apiKey},
		{nAuth: 2, auth1: "Bearer " + edValid, auth2: "Bearer " + rsaValid, nKey: 2, key1: apiKey, key2: otherAPIKey},
		{query: "access_token=" + edValid},
		{query: "api_key=" + apiKey + "&X-API-Key=" + apiKey + "&authorization=Bearer%20" + edValid},
		{nAuth: 1, auth1: "Bearer " + edValid, query: "access_token=" + ecValid},
		{nKey: 1, key1: apiKey, query: "api_key=" + otherAPIKey + "&%zz"},
		{},
	}
	for _, s := range seeds {
		f.Add(s.nAuth, s.auth1, s.auth2, s.nKey, s.key1, s.key2, s.query)
	}

	a, err := auth.New(staticConfig(f), auth.Options{Clock: newClock(t0).Now, Logger: quiet})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = a.Close() })
	var got identity.Identity
	var served bool
	h := a.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		served = true
		got, _ = identity.FromContext(r.Context())
	}))
	route := &policy.Route{Policy: policy.Policy{Auth: policy.AuthRequired}}
	challenges := map[string]bool{challengeNone: true, challengeInvalid: true, challengeExpired: true, challengeMultiple: true, challengeAPIKey: true}
	messages := map[string]bool{
		"missing credentials": true, "unsupported authorization scheme": true, "multiple credentials": true,
		"invalid token": true, "token expired": true, "invalid API key": true,
	}

	f.Fuzz(func(t *testing.T, nAuth uint8, auth1, auth2 string, nKey uint8, key1, key2, query string) {
		authz := []string{auth1, auth2}[:nAuth%3]
		apiKeys := []string{key1, key2}[:nKey%3]
		req := httptest.NewRequest(http.MethodGet, "/v1/orders", nil)
		req.URL.RawQuery = query
		req = req.WithContext(policy.NewContext(req.Context(), route))
		if len(authz) > 0 {
			req.Header["Authorization"] = authz
		}
		if len(apiKeys) > 0 {
			req.Header["X-Api-Key"] = apiKeys
		}
		rec := httptest.NewRecorder()
		got, served = identity.Identity{}, false
		h.ServeHTTP(rec, req)

		// The one subject the request proves, if it carries exactly one valid credential.
		var wantSubject string
		var wantMethod identity.Method
		switch {
		case len(authz) == 1 && len(apiKeys) == 0:
			if v := authz[0]; len(v) >= 7 && strings.EqualFold(v[:7], "Bearer ") {
				wantSubject, wantMethod = validTokens[v[7:]], identity.MethodJWT
			}
		case len(authz) == 0 && len(apiKeys) == 1:
			wantSubject, wantMethod = validKeys[apiKeys[0]], identity.MethodAPIKey
		}
		sent := fmt.Sprintf("Authorization %q, X-API-Key %q, query %q", authz, apiKeys, query)

		switch rec.Code {
		case http.StatusOK:
			if wantSubject == "" {
				t.Fatalf("admitted %s as %+v", sent, got)
			}
			if !served || sub(got.Source, got.Subject) != wantSubject || got.Method != wantMethod {
				t.Fatalf("admitted %s as %+v (served %v), want subject %q by %s", sent, got, served, wantSubject, wantMethod)
			}
			if len(rec.Header()) != 0 || rec.Body.Len() != 0 {
				t.Fatalf("admitted %s with headers %v and body %q from the middleware", sent, rec.Header(), rec.Body)
			}
		case http.StatusUnauthorized:
			if wantSubject != "" {
				t.Fatalf("refused %s, which carries one valid credential (%q)", sent, wantSubject)
			}
			if served {
				t.Fatalf("refused %s after running the handler", sent)
			}
			checkFixedRefusal(t, rec, sent, challenges, messages)
			challenge := rec.Header().Get("WWW-Authenticate")
			switch n := len(authz) + len(apiKeys); {
			case n == 0 && challenge != challengeNone:
				t.Fatalf("no credential (query %q): challenge %q, want %q", query, challenge, challengeNone)
			case n > 1 && challenge != challengeMultiple:
				t.Fatalf("%d credentials (%s): challenge %q, want %q", n, sent, challenge, challengeMultiple)
			case n == 1 && len(apiKeys) == 1 && challenge != challengeAPIKey:
				t.Fatalf("invalid API key (%s): challenge %q, want %q", sent, challenge, challengeAPIKey)
			}
			for _, v := range append(slices.Clone(authz), apiKeys...) {
				if echoes(rec.Body.String(), v) {
					t.Fatalf("401 body %q echoes the credential %q", rec.Body, v)
				}
			}
		default:
			t.Fatalf("status %d for %s", rec.Code, sent)
		}
	})
}

// checkFixedRefusal fails unless rec is one of the stage's fixed 401 answers: a Bearer
// challenge of the fixed set, only the headers every refusal has, and a google.rpc.Status
// whose message is one of the fixed short reasons, without details. So nothing the client
// sent can be in it.
func checkFixedRefusal(t *testing.T, rec *httptest.ResponseRecorder, sent string, challenges, messages map[string]bool) {
	t.Helper()
	hdr := rec.Header()
	if vs := hdr.Values("WWW-Authenticate"); len(vs) != 1 || !strings.HasPrefix(vs[0], `Bearer realm="shop"`) || !challenges[vs[0]] {
		t.Fatalf("401 for %s: WWW-Authenticate %q, want one fixed Bearer challenge", sent, vs)
	}
	for name, vs := range hdr {
		switch name {
		case "Www-Authenticate":
		case "Content-Type":
			if len(vs) != 1 || vs[0] != "application/json" {
				t.Fatalf("401 for %s: Content-Type %q", sent, vs)
			}
		case "Content-Length":
			if len(vs) != 1 || vs[0] != strconv.Itoa(rec.Body.Len()) {
				t.Fatalf("401 for %s: Content-Length %q for %d bytes", sent, vs, rec.Body.Len())
			}
		default:
			t.Fatalf("401 for %s: unexpected header %s: %q", sent, name, vs)
		}
	}
	var st map[string]json.RawMessage
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatalf("401 for %s: body %q is not JSON: %v", sent, rec.Body, err)
	}
	var code int
	var msg string
	if err := json.Unmarshal(st["code"], &code); err != nil || code != 16 {
		t.Fatalf("401 for %s: body %q, want code 16 (UNAUTHENTICATED)", sent, rec.Body)
	}
	if err := json.Unmarshal(st["message"], &msg); err != nil || !messages[msg] {
		t.Fatalf("401 for %s: message %q is not one of the fixed reasons", sent, st["message"])
	}
	for name, v := range st {
		switch {
		case name == "code", name == "message":
		case name == "details" && string(v) == "[]":
		default:
			t.Fatalf("401 for %s: body %q has member %q", sent, rec.Body, name)
		}
	}
}

// echoes reports whether body contains the credential v, or the token of a Bearer v, where
// that is long enough to be told apart from the fixed text of a refusal.
func echoes(body, v string) bool {
	const minLen = 16 // longer than any word of the fixed answers
	for _, s := range []string{v, strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(v, "Bearer "), "bearer "))} {
		if len(s) >= minLen && strings.Contains(body, s) {
			return true
		}
	}
	return false
}
