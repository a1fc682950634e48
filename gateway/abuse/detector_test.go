package abuse

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/testclock"
	"github.com/acme/shopgate/internal/testredis"
)

// statusBody is the google.rpc.Status JSON a refused request carries.
type statusBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type       string `json:"@type"`
		RetryDelay string `json:"retryDelay"`
	} `json:"details"`
}

// checkBlocked fails unless resp is the 429 of a blocked address with Retry-After retry.
func checkBlocked(t *testing.T, resp *http.Response, body []byte, retry string) {
	t.Helper()
	if resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429 (%s)", resp.StatusCode, body)
	}
	if got := resp.Header.Get("Retry-After"); got != retry {
		t.Fatalf("Retry-After %q, want %q", got, retry)
	}
	var st statusBody
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if st.Code != 8 || st.Message != "too many failed authentications from this address" ||
		len(st.Details) != 1 || st.Details[0].Type != "type.googleapis.com/google.rpc.RetryInfo" || st.Details[0].RetryDelay != retry+"s" {
		t.Fatalf("body %s, want RESOURCE_EXHAUSTED with RetryInfo %ss", body, retry)
	}
}

// TestMiddlewareBlocks is the scenario: bad tokens from one address. More than 30
// failures within a minute (the 31st 401) block the address: from the 32nd request on, every
// request from it is refused with 429 before the handler, while another address passes.
func TestMiddlewareBlocks(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{BackendMemory, BackendRedis} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			cfg := Config{Backend: backend}
			if backend == BackendRedis {
				cfg.Redis = RedisConfig{Config: redisclient.Config{Addr: testredis.Need(t)}, KeyPrefix: testredis.Prefix(t, "abuse")}
			}
			f := newFixture(t, cfg, testclock.New())
			s := serve(t, f.d)
			const bad = "198.51.100.7"
			for i := 1; i <= 31; i++ {
				f.clock.Advance(time.Second) // 31 failures within 31s
				if resp, body := s.get(t, bad, http.StatusUnauthorized); resp.StatusCode != http.StatusUnauthorized {
					t.Fatalf("request %d: %d, want 401 (%s)", i, resp.StatusCode, body)
				}
			}
			calls := s.calls.Load()
			for i := 32; i <= 40; i++ {
				resp, body := s.get(t, bad, http.StatusOK)
				checkBlocked(t, resp, body, "300")
			}
			if s.calls.Load() != calls {
				t.Fatal("the handler was called for a blocked address")
			}
			if resp, body := s.get(t, "198.51.100.8", http.StatusUnauthorized); resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("another address: %d, want 401 (%s)", resp.StatusCode, body)
			}
			f.clock.Advance(4*time.Minute + 59*time.Second + 500*time.Millisecond)
			resp, body := s.get(t, bad, http.StatusOK)
			checkBlocked(t, resp, body, "1") // half a second left: rounded up
			f.clock.Advance(500 * time.Millisecond)
			if resp, body := s.get(t, bad, http.StatusOK); resp.StatusCode != http.StatusOK {
				t.Fatalf("after the block: %d, want 200 (%s)", resp.StatusCode, body)
			}
			if n := f.logs.Count(`"msg":"client address blocked for failed authentications"`); n != 1 {
				t.Fatalf("logged %d blocks, want 1", n)
			}
			if n := f.logs.Count(`"addr":"198.51.100.7","failures":31`); n != 1 {
				t.Fatalf("the block line lacks the address or the failures:\n%s", f.logs.String())
			}
			if got := testutil.ToFloat64(f.d.metrics.blocks); got != 1 {
				t.Fatalf("gateway_abuse_blocks_total = %v, want 1", got)
			}
			if got := testutil.ToFloat64(f.d.metrics.refused); got != 10 {
				t.Fatalf("gateway_abuse_refused_total = %v, want 10", got)
			}
			if got := testutil.ToFloat64(f.d.metrics.failures); got != 32 {
				t.Fatalf("gateway_abuse_failures_total = %v, want 32", got)
			}
		})
	}
}

func TestMiddlewareCountsOnly401(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status      int
		wantBlocked bool
	}{
		{http.StatusUnauthorized, true},
		{http.StatusForbidden, false},
		{http.StatusTooManyRequests, false},
		{http.StatusOK, false},
		{http.StatusNotFound, false},
	}
	for _, tt := range tests {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			t.Parallel()
			f := newFixture(t, Config{MaxFailures: 2}, testclock.New())
			s := serve(t, f.d)
			for range 3 {
				s.get(t, "203.0.113.9", tt.status)
			}
			resp, _ := s.get(t, "203.0.113.9", http.StatusOK)
			if blocked := resp.StatusCode == http.StatusTooManyRequests; blocked != tt.wantBlocked {
				t.Fatalf("after 3 answers of %d: status %d, want blocked %v", tt.status, resp.StatusCode, tt.wantBlocked)
			}
		})
	}
}

// TestMiddlewareReadsEdgeState checks the stage inside the edge (a State made by an outer
// layer), as the gateway wires it, and that the refusal passes through the edge's recorder.
func TestMiddlewareReadsEdgeState(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{MaxFailures: 1}, testclock.New())
	var outer *edge.State
	h := edge.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outer = edge.StateFrom(r.Context())
		f.d.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if edge.StateFrom(r.Context()) != outer {
				t.Error("the stage made a second State")
			}
			w.WriteHeader(http.StatusUnauthorized)
		})).ServeHTTP(w, r)
	}))
	for i, want := range []int{401, 401, 429} {
		req := httptest.NewRequest(http.MethodGet, "/v1/orders", nil)
		req.RemoteAddr = "192.0.2.50:1234"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want || outer.Status() != want {
			t.Fatalf("request %d: %d (State %d), want %d", i, rec.Code, outer.Status(), want)
		}
	}
}

func TestMiddlewareUnknownAddressPasses(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{MaxFailures: 1}, testclock.New())
	h := f.d.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusUnauthorized)
	}))
	for range 5 {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = "pipe"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusUnauthorized {
			t.Fatalf("status %d, want 401: an unknown address is never blocked", rec.Code)
		}
	}
	if f.d.Local().Len() != 0 {
		t.Fatal("an unknown address was counted")
	}
}

func TestDisabled(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{Disabled: true, MaxFailures: 1}, testclock.New())
	s := serve(t, f.d)
	for range 5 {
		if resp, _ := s.get(t, "192.0.2.1", http.StatusUnauthorized); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("disabled: %d, want 401", resp.StatusCode)
		}
	}
	if got := testutil.ToFloat64(f.d.metrics.failures); got != 0 {
		t.Fatalf("disabled: %v failures counted", got)
	}
}

// TestReloadKeepsState builds a second detector with the first one's Local store and a changed
// threshold, on the same registry, as a reload does.
func TestReloadKeepsState(t *testing.T) {
	t.Parallel()
	clock := testclock.New()
	f := newFixture(t, Config{MaxFailures: 5}, clock)
	s := serve(t, f.d)
	for range 3 {
		s.get(t, "192.0.2.1", http.StatusUnauthorized)
	}
	d2, err := New(Config{MaxFailures: 3}, Options{Local: f.d.Local(), Registerer: f.reg, Resolver: f.d.resolver, Now: clock.Now, Logger: f.d.logger})
	if err != nil {
		t.Fatalf("a reload on the same registry: %v", err)
	}
	s2 := serve(t, d2)
	s2.get(t, "192.0.2.1", http.StatusUnauthorized) // the 4th failure: more than 3
	resp, body := s2.get(t, "192.0.2.1", http.StatusOK)
	checkBlocked(t, resp, body, "300")
	if got := testutil.ToFloat64(f.d.metrics.failures); got != 4 {
		t.Fatalf("failures counter %v, want 4: the reloaded detector counts on the same series", got)
	}
}
