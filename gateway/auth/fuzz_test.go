package auth_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/auth"
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
