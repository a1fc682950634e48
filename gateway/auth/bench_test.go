package auth_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
)

// discard is a ResponseWriter that keeps nothing, so the benchmark measures the stage alone.
type discard struct{ h http.Header }

func (d *discard) Header() http.Header         { return d.h }
func (d *discard) Write(p []byte) (int, error) { return len(p), nil }
func (d *discard) WriteHeader(int)             {}

// BenchmarkVerify runs the middleware on one request that reuses one token, with the cache of
// verified tokens (a hit: SHA-256 of the token and a map lookup) and without it (a signature
// verification per request), side by side for each algorithm; "bare" is the handler alone and
// "public" an AuthNone route.
//
//	go test -run '^$' -bench BenchmarkVerify -benchmem ./gateway/auth/
func BenchmarkVerify(b *testing.B) {
	tokens := []struct{ name, token string }{
		{"EdDSA", edToken(claims("alice", "customer"))},
		{"ES256", ecToken(claims("alice", "customer"))},
		{"RS256", rsaToken(claims("alice", "customer"))},
	}
	var sink identity.Identity
	next := http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		sink, _ = identity.FromContext(r.Context())
	})
	build := func(b *testing.B, disabled bool) http.Handler {
		cfg := staticConfig(b)
		cfg.Cache.Disabled = disabled
		c := newClock(t0)
		a, err := auth.New(cfg, auth.Options{Clock: c.Now, Logger: quiet})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = a.Close() })
		return a.Middleware(next)
	}
	request := func(mode policy.AuthMode, token string) *http.Request {
		r := httptest.NewRequest(http.MethodGet, "/v1/orders/o1", nil)
		r = r.WithContext(policy.NewContext(r.Context(), &policy.Route{Policy: policy.Policy{Auth: mode, Roles: []string{"customer"}}}))
		r.Header.Set("Authorization", "Bearer "+token)
		return r
	}
	run := func(b *testing.B, h http.Handler, r *http.Request) {
		w := &discard{h: http.Header{}}
		h.ServeHTTP(w, r) // warm the cache
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			h.ServeHTTP(w, r)
		}
	}
	b.Run("bare", func(b *testing.B) { run(b, next, request(policy.AuthRequired, tokens[0].token)) })
	b.Run("public", func(b *testing.B) { run(b, build(b, false), request(policy.AuthNone, tokens[0].token)) })
	for _, tk := range tokens {
		b.Run(tk.name+"/cached", func(b *testing.B) { run(b, build(b, false), request(policy.AuthRequired, tk.token)) })
		b.Run(tk.name+"/uncached", func(b *testing.B) { run(b, build(b, true), request(policy.AuthRequired, tk.token)) })
	}
	_ = sink
}
