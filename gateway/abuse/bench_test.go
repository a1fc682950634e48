package abuse

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/redisclient"
)

// BenchmarkBlocked is the stage's cost for a request that passes: the address look-up, before
// next. Memory: one map lookup under one of 32 locks. Redis: the same in the cache of answers.
func BenchmarkBlocked(b *testing.B) {
	for _, backend := range []string{BackendMemory, BackendRedis} {
		b.Run(backend, func(b *testing.B) {
			d, err := New(Config{Backend: backend, Redis: RedisConfig{Config: redisclient.Config{Addr: "127.0.0.1:1"}, SyncInterval: time.Hour}}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			addr := netip.MustParseAddr("192.0.2.1")
			now := time.Now()
			if backend == BackendRedis { // warm the cache: the answer is cached for an hour
				d.store.(*shared).remember(addr, Block{}, now)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					_, _, _ = d.store.Blocked(b.Context(), addr, now)
				}
			})
		})
	}
}

// BenchmarkMiddleware is a whole passing request through the stage (memory backend), inside
// the edge (its State made by an outer layer, as in the gateway) and alone (the stage makes the
// State: two allocations).
func BenchmarkMiddleware(b *testing.B) {
	for _, inEdge := range []bool{true, false} {
		name := "alone"
		if inEdge {
			name = "in-edge"
		}
		b.Run(name, func(b *testing.B) {
			d, err := New(Config{}, Options{})
			if err != nil {
				b.Fatal(err)
			}
			h := d.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusOK) }))
			var w http.ResponseWriter = httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/v1/orders", nil)
			req.RemoteAddr = "192.0.2.1:1234"
			if inEdge {
				_, w, req = edge.Ensure(w, req)
			}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(w, req)
			}
		})
	}
}
