package ratelimit

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/internal/testclock"
)

func TestMemoryGCRA(t *testing.T) {
	t.Parallel()
	limit := policy.RateLimit{Requests: 10, Per: 10 * time.Second, Burst: 3} // one per second
	type step struct {
		advance       time.Duration
		wantAllowed   bool
		wantRemaining int
		wantRetry     time.Duration
		wantReset     time.Duration
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"burst then refused", []step{
			{0, true, 2, 0, time.Second},
			{0, true, 1, 0, 2 * time.Second},
			{0, true, 0, 0, 3 * time.Second},
			{0, false, 0, time.Second, 3 * time.Second},
		}},
		{"one interval refills one", []step{
			{0, true, 2, 0, time.Second},
			{0, true, 1, 0, 2 * time.Second},
			{0, true, 0, 0, 3 * time.Second},
			{time.Second, true, 0, 0, 3 * time.Second},
			{500 * time.Millisecond, false, 0, 500 * time.Millisecond, 2500 * time.Millisecond},
		}},
		{"idle key is full again", []step{
			{0, true, 2, 0, time.Second},
			{0, true, 1, 0, 2 * time.Second},
			{time.Hour, true, 2, 0, time.Second},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			clock := testclock.New()
			m := NewMemory(0, clock.Now)
			for i, s := range tt.steps {
				clock.Advance(s.advance)
				got, err := m.Allow(context.Background(), "k", limit)
				if err != nil {
					t.Fatal(err)
				}
				want := Result{Allowed: s.wantAllowed, Remaining: s.wantRemaining, RetryAfter: s.wantRetry, ResetAfter: s.wantReset}
				if got != want {
					t.Fatalf("step %d: Allow = %+v, want %+v", i, got, want)
				}
			}
		})
	}
}

func TestMemoryEvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	clock := testclock.New()
	m := NewMemory(shardCount, clock.Now) // one key per shard
	limit := policy.RateLimit{Requests: 1, Per: time.Hour, Burst: 1}
	for i := range 10 * shardCount {
		if _, err := m.Allow(context.Background(), "k"+strconv.Itoa(i), limit); err != nil {
			t.Fatal(err)
		}
	}
	if m.Len() > m.Cap() || m.Cap() != shardCount {
		t.Fatalf("Len = %d, Cap = %d; want Len <= Cap = %d", m.Len(), m.Cap(), shardCount)
	}
	if m.Evictions() != uint64(10*shardCount-m.Len()) {
		t.Fatalf("Evictions = %d, want %d", m.Evictions(), 10*shardCount-m.Len())
	}
	// The most recent key is kept: refused again at once.
	last := "k" + strconv.Itoa(10*shardCount-1)
	if res, _ := m.Allow(context.Background(), last, limit); res.Allowed {
		t.Fatal("the most recently used key was evicted")
	}
}

// TestMemoryFloodIsBounded sends one million distinct keys through the default-sized backend
// and checks the documented bound: at most DefaultMaxKeys keys and ~21 MB of live heap (asserted
// against 32 MB to leave room for the runtime's own growth).
func TestMemoryFloodIsBounded(t *testing.T) {
	const flood = 1_000_000
	const boundBytes = 32 << 20
	m := NewMemory(DefaultMaxKeys, time.Now)
	limit := policy.RateLimit{Requests: 100, Per: time.Minute, Burst: 100}
	ctx := context.Background()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	workers := runtime.GOMAXPROCS(0)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			buf := make([]byte, 0, 96)
			for i := w; i < flood; i += workers {
				// A key as the stage builds it: RPC, kind, an IPv4 address.
				buf = append(buf[:0], "/shop.inventory.v1.InventoryService/GetItem|ip:10."...)
				buf = strconv.AppendInt(buf, int64(i>>16&255), 10)
				buf = append(buf, '.')
				buf = strconv.AppendInt(buf, int64(i>>8&255), 10)
				buf = append(buf, '.')
				buf = strconv.AppendInt(buf, int64(i&255), 10)
				if _, err := m.Allow(ctx, string(buf), limit); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d keys held of %d sent, %d evicted, live heap grew by %.1f MB (%.0f B/key)",
		m.Len(), flood, m.Evictions(), float64(grown)/(1<<20), float64(grown)/float64(m.Len()))
	if m.Len() > DefaultMaxKeys+shardCount {
		t.Fatalf("holds %d keys, want at most %d", m.Len(), DefaultMaxKeys)
	}
	if grown > boundBytes {
		t.Fatalf("live heap grew by %d bytes, want at most %d", grown, boundBytes)
	}
	runtime.KeepAlive(m)
}

func BenchmarkMemoryAllow(b *testing.B) {
	m := NewMemory(0, nil)
	limit := policy.RateLimit{Requests: 1_000_000_000, Per: time.Second, Burst: 1_000_000_000}
	keys := make([]string, 1024)
	for i := range keys {
		keys[i] = "/shop.order.v1.OrderService/GetOrder|sub:user-" + strconv.Itoa(i)
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			_, _ = m.Allow(context.Background(), keys[i&1023], limit)
			i++
		}
	})
}

func TestMemoryHugeBurstDoesNotOverflow(t *testing.T) {
	t.Parallel()
	m := NewMemory(0, testclock.New().Now)
	limit := policy.RateLimit{Requests: 1, Per: 24 * time.Hour, Burst: 1 << 40}
	for i := range 3 {
		res, err := m.Allow(context.Background(), "k", limit)
		if err != nil || !res.Allowed || res.Remaining <= 0 {
			t.Fatalf("call %d: %+v, %v; want allowed with a large remainder", i, res, err)
		}
	}
}
