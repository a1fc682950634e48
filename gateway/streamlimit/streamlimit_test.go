package streamlimit_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/streamlimit"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestKey(t *testing.T) {
	addr := netip.MustParseAddr("203.0.113.7")
	tests := []struct {
		name string
		id   identity.Identity
		addr netip.Addr
		want string
	}{
		{"token", identity.Identity{Subject: "idp|alice", Method: identity.MethodJWT}, addr, "sub:idp|alice"},
		{"API key", identity.Identity{Subject: "ci-bot", Method: identity.MethodAPIKey}, addr, "key:ci-bot"},
		{"anonymous", identity.Identity{}, addr, "ip:203.0.113.7"},
		{"anonymous, no address", identity.Identity{}, netip.Addr{}, "ip:unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := streamlimit.Key(tt.id, tt.addr); got != tt.want {
				t.Errorf("Key = %q, want %q", got, tt.want)
			}
		})
	}
}

var (
	watch = &policy.Route{RPC: "/shop.order.v1.OrderService/WatchOrder", ServerStreaming: true}
	get   = &policy.Route{RPC: "/shop.order.v1.OrderService/GetOrder"}
)

// held is a stage under test whose streams stay open until release.
type held struct {
	t       *testing.T
	handler http.Handler
	entered chan struct{} // one value per request that reached the handler
	release chan struct{}
	wg      sync.WaitGroup
}

func newHeld(t *testing.T, cfg streamlimit.Config, opts streamlimit.Options) (*held, *streamlimit.Limiter) {
	t.Helper()
	l, err := streamlimit.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	h := &held{t: t, entered: make(chan struct{}, 100), release: make(chan struct{})}
	h.handler = l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.entered <- struct{}{}
		<-h.release
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(h.stop)
	return h, l
}

func request(rt *policy.Route, id *identity.Identity) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v1/orders/o-1:watch", nil)
	ctx := policy.NewContext(r.Context(), rt)
	if id != nil {
		ctx = identity.NewContext(ctx, *id)
	}
	return r.WithContext(ctx)
}

// open starts a request that the stage admits and that stays open until stop.
func (h *held) open(rt *policy.Route, id *identity.Identity) {
	h.t.Helper()
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		h.handler.ServeHTTP(httptest.NewRecorder(), request(rt, id))
	}()
	<-h.entered
}

// serve runs a request that must not reach the handler (or does and is released at once).
func (h *held) serve(rt *policy.Route, id *identity.Identity) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.handler.ServeHTTP(rec, request(rt, id))
	return rec
}

func (h *held) stop() {
	select {
	case <-h.release:
	default:
		close(h.release)
	}
	h.wg.Wait()
}

func TestCapPerCaller(t *testing.T) {
	alice := &identity.Identity{Subject: "alice", Method: identity.MethodJWT}
	bob := &identity.Identity{Subject: "bob", Method: identity.MethodJWT}
	aliceKey := &identity.Identity{Subject: "alice", Method: identity.MethodAPIKey}
	tests := []struct {
		name    string
		max     int
		wantCap int
	}{
		{"default", 0, streamlimit.DefaultMaxPerCaller},
		{"configured", 3, 3},
		{"one", 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			h, l := newHeld(t, streamlimit.Config{MaxPerCaller: tt.max}, streamlimit.Options{Registerer: reg})
			for range tt.wantCap {
				h.open(watch, alice)
			}
			rec := h.serve(watch, alice)
			if rec.Code != http.StatusTooManyRequests || rec.Header().Get("Retry-After") != "1" {
				t.Fatalf("stream %d of alice: %d, Retry-After %q; want 429 with Retry-After: 1", tt.wantCap+1, rec.Code, rec.Header().Get("Retry-After"))
			}
			var st struct {
				Code    int              `json:"code"`
				Message string           `json:"message"`
				Details []map[string]any `json:"details"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil || st.Code != 8 || st.Message != "too many open streams" ||
				len(st.Details) != 1 || st.Details[0]["retryDelay"] != "1s" {
				t.Fatalf("refusal body %s (%v), want RESOURCE_EXHAUSTED with a RetryInfo of 1s", rec.Body, err)
			}
			if got := l.Counts().Open(streamlimit.Key(*alice, netip.Addr{})); got != tt.wantCap {
				t.Fatalf("alice holds %d open, want %d", got, tt.wantCap)
			}
			// Others are not alice: another subject, the same subject through an API key, an
			// anonymous caller. Unary routes pass whatever alice holds.
			h.open(watch, bob)
			h.open(watch, aliceKey)
			h.open(watch, nil)
			h.open(get, alice)
			if got := gathered(t, reg, "gateway_streams_refused_total"); got != 1 {
				t.Fatalf("refused counter = %v, want 1", got)
			}
			if got := gathered(t, reg, "gateway_streams_open"); got != float64(tt.wantCap+3) {
				t.Fatalf("open gauge = %v, want %d", got, tt.wantCap+3)
			}
			h.stop()
			if n := l.Counts().Callers(); n != 0 {
				t.Fatalf("%d callers still counted after every stream ended", n)
			}
		})
	}
}

func TestNoCap(t *testing.T) {
	h, l := newHeld(t, streamlimit.Config{MaxPerCaller: -1}, streamlimit.Options{})
	alice := &identity.Identity{Subject: "alice", Method: identity.MethodJWT}
	for range 2 * streamlimit.DefaultMaxPerCaller {
		h.open(watch, alice)
	}
	if n := l.Counts().Callers(); n != 0 {
		t.Fatalf("counted %d callers with the cap off", n)
	}
}

// TestReleasedWhenTheStreamEnds: the end of the handler frees the place, a panic included;
// a new stage built with the old counts (a reload) sees the streams still open, and their
// end frees them there.
func TestReleasedWhenTheStreamEnds(t *testing.T) {
	alice := identity.Identity{Subject: "alice", Method: identity.MethodJWT}
	key := streamlimit.Key(alice, netip.Addr{})
	l, err := streamlimit.New(streamlimit.Config{MaxPerCaller: 1}, streamlimit.Options{})
	if err != nil {
		t.Fatal(err)
	}
	panicking := l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom") }))
	func() {
		defer func() { _ = recover() }()
		panicking.ServeHTTP(httptest.NewRecorder(), request(watch, &alice))
	}()
	if got := l.Counts().Open(key); got != 0 {
		t.Fatalf("after a panic: %d open, want 0", got)
	}

	h, old := newHeld(t, streamlimit.Config{MaxPerCaller: 1}, streamlimit.Options{})
	h.open(watch, &alice)
	reloaded, err := streamlimit.New(streamlimit.Config{MaxPerCaller: 1}, streamlimit.Options{Counts: old.Counts()})
	if err != nil {
		t.Fatal(err)
	}
	ok := reloaded.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	rec := httptest.NewRecorder()
	ok.ServeHTTP(rec, request(watch, &alice))
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("after a reload with alice's stream open: %d, want 429", rec.Code)
	}
	h.stop()
	rec = httptest.NewRecorder()
	ok.ServeHTTP(rec, request(watch, &alice))
	if rec.Code != http.StatusOK {
		t.Fatalf("after the old stream ended: %d, want 200", rec.Code)
	}
}

// gathered returns the sum of the samples of the metric named name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	return sum
}
