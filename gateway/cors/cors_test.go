package cors

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	shop  = "https://shop.example.com"
	admin = "https://admin.example.com"
	evil  = "https://evil.example.net"
)

// serve runs the stage in front of an upstream that counts its calls, on a real server.
func serve(t *testing.T, cfg Config) (*httptest.Server, *atomic.Int64, *CORS) {
	t.Helper()
	s, err := New(cfg, Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	var calls atomic.Int64
	srv := httptest.NewServer(s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		w.Header().Add("Vary", "Accept-Encoding")
		_, _ = io.WriteString(w, "upstream")
	})))
	t.Cleanup(srv.Close)
	return srv, &calls, s
}

func do(t *testing.T, srv *httptest.Server, method string, hdr map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/v1/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp
}

func TestPreflight(t *testing.T) {
	t.Parallel()
	exact := Config{AllowedOrigins: []string{shop, admin}, AllowCredentials: true, MaxAge: 5 * time.Minute}
	tests := []struct {
		name        string
		cfg         Config
		hdr         map[string]string
		wantOrigin  string // "" means no CORS headers at all
		wantCreds   bool
		wantMaxAge  string
		wantMethods string
	}{
		{"allowed origin", exact, map[string]string{"Origin": shop, "Access-Control-Request-Method": "POST"}, shop, true, "300", "GET, HEAD, POST, PUT, PATCH, DELETE"},
		{"allowed origin in upper case", exact, map[string]string{"Origin": "HTTPS://SHOP.example.com", "Access-Control-Request-Method": "GET"}, "HTTPS://SHOP.example.com", true, "300", "GET, HEAD, POST, PUT, PATCH, DELETE"},
		{"allowed headers requested", exact, map[string]string{"Origin": admin, "Access-Control-Request-Method": "PUT", "Access-Control-Request-Headers": "authorization, content-type,Idempotency-Key"}, admin, true, "300", "GET, HEAD, POST, PUT, PATCH, DELETE"},
		{"disallowed origin", exact, map[string]string{"Origin": evil, "Access-Control-Request-Method": "POST"}, "", false, "", ""},
		{"origin with other port", exact, map[string]string{"Origin": shop + ":8443", "Access-Control-Request-Method": "POST"}, "", false, "", ""},
		{"disallowed method", exact, map[string]string{"Origin": shop, "Access-Control-Request-Method": "TRACE"}, "", false, "", ""},
		{"disallowed header", exact, map[string]string{"Origin": shop, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-user-id"}, "", false, "", ""},
		{"wildcard", Config{AllowedOrigins: []string{"*"}, AllowedMethods: []string{"get", "POST"}}, map[string]string{"Origin": evil, "Access-Control-Request-Method": "GET"}, "*", false, "600", "GET, POST"},
		{"cors off by default", Config{}, map[string]string{"Origin": shop, "Access-Control-Request-Method": "POST"}, "", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, calls, s := serve(t, tt.cfg)
			resp := do(t, srv, http.MethodOptions, tt.hdr)
			if resp.StatusCode != http.StatusNoContent {
				t.Fatalf("status = %d, want 204", resp.StatusCode)
			}
			if calls.Load() != 0 {
				t.Fatal("a preflight reached the upstream")
			}
			h := resp.Header
			if tt.wantOrigin == "" {
				for k := range h {
					if strings.HasPrefix(k, "Access-Control-") {
						t.Fatalf("refused preflight carries %s: %q", k, h.Get(k))
					}
				}
				if testutil.ToFloat64(s.preflightRefused) != 1 {
					t.Fatal("refused preflight not counted")
				}
				return
			}
			if got := h.Get("Access-Control-Allow-Origin"); got != tt.wantOrigin {
				t.Fatalf("Allow-Origin = %q, want %q", got, tt.wantOrigin)
			}
			if got := h.Get("Access-Control-Allow-Credentials") == "true"; got != tt.wantCreds {
				t.Fatalf("Allow-Credentials = %v, want %v", got, tt.wantCreds)
			}
			if got := h.Get("Access-Control-Max-Age"); got != tt.wantMaxAge {
				t.Fatalf("Max-Age = %q, want %q", got, tt.wantMaxAge)
			}
			if got := h.Get("Access-Control-Allow-Methods"); got != tt.wantMethods {
				t.Fatalf("Allow-Methods = %q, want %q", got, tt.wantMethods)
			}
			if got := h.Get("Access-Control-Allow-Headers"); got == "" {
				t.Fatal("Allow-Headers missing")
			}
			if got := strings.Join(h.Values("Vary"), ","); !strings.Contains(got, "Origin") {
				t.Fatalf("Vary = %q, want Origin", got)
			}
			if testutil.ToFloat64(s.preflightAllowed) != 1 {
				t.Fatal("allowed preflight not counted")
			}
		})
	}
}

func TestSimpleRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cfg        Config
		method     string
		hdr        map[string]string
		wantOrigin string
		wantVary   bool
	}{
		{"allowed origin", Config{AllowedOrigins: []string{shop}}, http.MethodGet, map[string]string{"Origin": shop}, shop, true},
		{"disallowed origin", Config{AllowedOrigins: []string{shop}}, http.MethodGet, map[string]string{"Origin": evil}, "", true},
		{"no origin", Config{AllowedOrigins: []string{shop}}, http.MethodPost, nil, "", true},
		{"wildcard", Config{AllowedOrigins: []string{"*"}}, http.MethodGet, map[string]string{"Origin": evil}, "*", true},
		{"options without request method goes upstream", Config{AllowedOrigins: []string{shop}}, http.MethodOptions, map[string]string{"Origin": shop}, shop, true},
		{"cors off", Config{}, http.MethodGet, map[string]string{"Origin": shop}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv, calls, _ := serve(t, tt.cfg)
			resp := do(t, srv, tt.method, tt.hdr)
			if resp.StatusCode != http.StatusOK || calls.Load() != 1 {
				t.Fatalf("status = %d, upstream calls %d; want 200 and 1", resp.StatusCode, calls.Load())
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tt.wantOrigin {
				t.Fatalf("Allow-Origin = %q, want %q", got, tt.wantOrigin)
			}
			if tt.wantOrigin != "" {
				exp := resp.Header.Get("Access-Control-Expose-Headers")
				for _, h := range AlwaysExposedHeaders {
					if !strings.Contains(exp, h) {
						t.Fatalf("Expose-Headers = %q, missing %s", exp, h)
					}
				}
			}
			vary := resp.Header.Values("Vary")
			if got := len(vary) > 0 && vary[0] == "Origin"; got != tt.wantVary {
				t.Fatalf("Vary = %q, want Origin first: %v", vary, tt.wantVary)
			}
			if !strings.Contains(strings.Join(vary, ","), "Accept-Encoding") {
				t.Fatalf("Vary = %q lost the upstream's value", vary)
			}
		})
	}
}

func TestNewValidates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want []string // every one must be in the error
	}{
		{"wildcard with credentials", Config{AllowedOrigins: []string{"*"}, AllowCredentials: true}, []string{`"*" cannot be combined with allow_credentials`}},
		{"origin with path", Config{AllowedOrigins: []string{"https://shop.example.com/app"}}, []string{`allowed_origins[0]: "https://shop.example.com/app" is not an origin`}},
		{"origin with trailing slash", Config{AllowedOrigins: []string{"https://shop.example.com/"}}, []string{"allowed_origins[0]"}},
		{"origin without scheme", Config{AllowedOrigins: []string{"shop.example.com"}}, []string{"allowed_origins[0]"}},
		{"bad method", Config{AllowedMethods: []string{"GE T"}}, []string{`allowed_methods[0]: invalid method "GE T"`}},
		{"bad header", Config{AllowedHeaders: []string{"X:Y"}}, []string{`allowed_headers[0]: invalid header "X:Y"`}},
		{"bad exposed header", Config{ExposedHeaders: []string{""}}, []string{`exposed_headers[0]: invalid header ""`}},
		{"max age too long", Config{MaxAge: 48 * time.Hour}, []string{"max_age 48h0m0s out of range"}},
		{"negative max age", Config{MaxAge: -time.Second}, []string{"max_age -1s out of range"}},
		{"every bad value at once", Config{
			AllowedOrigins: []string{shop, "nope", "*"}, AllowCredentials: true, AllowedMethods: []string{"GET", "P T"},
			AllowedHeaders: []string{"a b"}, ExposedHeaders: []string{"X-Ok", "x,y"}, MaxAge: -1,
		}, []string{"allowed_origins[1]", "allow_credentials", "allowed_methods[1]", "allowed_headers[0]", "exposed_headers[1]", "max_age"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg, Options{})
			if err == nil {
				t.Fatalf("New(%+v) = nil error", tt.cfg)
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "creating cors: ") || strings.Count(msg, "creating cors") != 1 {
				t.Fatalf("error %q, want it prefixed once with the constructor's name", msg)
			}
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Fatalf("error %q, want it to contain %q", msg, w)
				}
			}
		})
	}
}

// TestNewLeavesItsInputAlone: defaulting and case folding work on copies, never on the
// caller's slices or the package's defaults.
func TestNewLeavesItsInputAlone(t *testing.T) {
	t.Parallel()
	cfg := Config{AllowedOrigins: []string{"HTTPS://Shop.Example.com"}, AllowedMethods: []string{"get"}}
	defaults := slices.Clone(DefaultAllowedMethods)
	for _, c := range []Config{cfg, {AllowedOrigins: []string{shop}}} {
		if _, err := New(c, Options{}); err != nil {
			t.Fatal(err)
		}
	}
	if cfg.AllowedOrigins[0] != "HTTPS://Shop.Example.com" || cfg.AllowedMethods[0] != "get" {
		t.Fatalf("New changed its Config: %+v", cfg)
	}
	if !slices.Equal(DefaultAllowedMethods, defaults) {
		t.Fatalf("New changed DefaultAllowedMethods: %v", DefaultAllowedMethods)
	}
}

func TestReloadReusesMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	for i := range 2 {
		if _, err := New(Config{AllowedOrigins: []string{shop}}, Options{Registerer: reg}); err != nil {
			t.Fatalf("New #%d on one registry: %v", i, err)
		}
	}
}

func BenchmarkSimpleRequest(b *testing.B) {
	s, err := New(Config{AllowedOrigins: []string{shop, admin}}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	h := s.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req := httptest.NewRequest(http.MethodGet, "/v1/orders", nil)
	req.Header.Set("Origin", shop)
	b.ReportAllocs()
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
	}
}
