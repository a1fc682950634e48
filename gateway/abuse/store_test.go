package abuse

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// testLimits are small thresholds for the store tests: more than 3 failures within 10s block
// for 1m.
var testLimits = Limits{MaxFailures: 3, Window: 10 * time.Second, BlockFor: time.Minute}

// step is one call of a store test: a failure (fail) or a look-up, at an offset from the start.
type step struct {
	at          time.Duration
	fail        bool
	wantBlocked bool
	wantCreated bool // for a failure: this one made the block
	wantCount   int  // for a failure that does not block: the failures in the window
}

var storeCases = []struct {
	name  string
	steps []step
}{
	{"max failures do not block", []step{
		{at: 0, fail: true, wantCount: 1},
		{at: time.Second, fail: true, wantCount: 2},
		{at: 2 * time.Second, fail: true, wantCount: 3},
		{at: 3 * time.Second},
	}},
	{"one more blocks, once", []step{
		{at: 0, fail: true, wantCount: 1},
		{at: 0, fail: true, wantCount: 2},
		{at: 0, fail: true, wantCount: 3},
		{at: time.Second, fail: true, wantBlocked: true, wantCreated: true},
		{at: time.Second, wantBlocked: true},
		{at: 2 * time.Second, fail: true, wantBlocked: true},
	}},
	{"failures leave the window", []step{
		{at: 0, fail: true, wantCount: 1},
		{at: 4 * time.Second, fail: true, wantCount: 2},
		{at: 8 * time.Second, fail: true, wantCount: 3},
		{at: 10 * time.Second, fail: true, wantCount: 3}, // the first is exactly one window old
		{at: 15 * time.Second, fail: true, wantCount: 3},
		{at: 16 * time.Second, fail: true, wantBlocked: true, wantCreated: true},
	}},
	{"block expires and counting restarts", []step{
		{at: 0, fail: true, wantCount: 1},
		{at: 0, fail: true, wantCount: 2},
		{at: 0, fail: true, wantCount: 3},
		{at: 0, fail: true, wantBlocked: true, wantCreated: true},
		{at: time.Minute - time.Millisecond, wantBlocked: true},
		{at: time.Minute},
		{at: time.Minute, fail: true, wantCount: 1},
	}},
}

// testStore runs the behaviour every Store shares.
func testStore(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	start := time.Unix(1_800_000_000, 0)
	for _, tt := range storeCases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStore(t)
			addr := netip.MustParseAddr("192.0.2.7")
			for i, st := range tt.steps {
				now := start.Add(st.at)
				if st.fail {
					b, created, err := s.Fail(ctx, addr, now, testLimits)
					if err != nil {
						t.Fatalf("step %d: %v", i, err)
					}
					if blocked := b.Until.After(now); blocked != st.wantBlocked || created != st.wantCreated {
						t.Fatalf("step %d: blocked %v created %v, want %v %v", i, blocked, created, st.wantBlocked, st.wantCreated)
					}
					if !st.wantBlocked && b.Failures != st.wantCount {
						t.Fatalf("step %d: %d failures, want %d", i, b.Failures, st.wantCount)
					}
					if st.wantCreated && (b.Failures != testLimits.MaxFailures+1 || !b.Until.Equal(now.Add(testLimits.BlockFor))) {
						t.Fatalf("step %d: block %+v, want %d failures until %v", i, b, testLimits.MaxFailures+1, now.Add(testLimits.BlockFor))
					}
				}
				_, blocked, err := s.Blocked(ctx, addr, now)
				if err != nil || blocked != st.wantBlocked {
					t.Fatalf("step %d: Blocked %v (%v), want %v", i, blocked, err, st.wantBlocked)
				}
			}
			if _, blocked, _ := s.Blocked(ctx, netip.MustParseAddr("192.0.2.8"), start); blocked {
				t.Fatal("another address is blocked")
			}
		})
	}
	t.Run("list and lift", func(t *testing.T) {
		t.Parallel()
		s := newStore(t)
		a, b, c := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("192.0.2.3")
		for _, addr := range []netip.Addr{a, b} {
			for range testLimits.MaxFailures + 1 {
				if _, _, err := s.Fail(ctx, addr, start, testLimits); err != nil {
					t.Fatal(err)
				}
			}
		}
		if _, _, err := s.Fail(ctx, c, start, testLimits); err != nil { // failing, not blocked
			t.Fatal(err)
		}
		list, err := s.List(ctx, start)
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(list, func(x, y Block) int { return x.Addr.Compare(y.Addr) })
		want := []Block{
			{Addr: a, Until: start.Add(testLimits.BlockFor), Failures: 4},
			{Addr: b, Until: start.Add(testLimits.BlockFor), Failures: 4},
		}
		if !equalBlocks(list, want) {
			t.Fatalf("List = %+v, want %+v", list, want)
		}
		if lifted, err := s.Lift(ctx, a, start); err != nil || !lifted {
			t.Fatalf("Lift(a) = %v, %v; want true", lifted, err)
		}
		if lifted, err := s.Lift(ctx, a, start); err != nil || lifted {
			t.Fatalf("Lift(a) again = %v, %v; want false", lifted, err)
		}
		if lifted, err := s.Lift(ctx, c, start); err != nil || lifted {
			t.Fatalf("Lift(c), failing but not blocked = %v, %v; want false", lifted, err)
		}
		if _, blocked, _ := s.Blocked(ctx, a, start); blocked {
			t.Fatal("a still blocked after Lift")
		}
		// A lifted address starts from zero.
		if got, _, _ := s.Fail(ctx, a, start, testLimits); got.Failures != 1 {
			t.Fatalf("after Lift: %d failures, want 1", got.Failures)
		}
		if list, _ = s.List(ctx, start.Add(testLimits.BlockFor)); len(list) != 0 {
			t.Fatalf("List after the blocks ended = %+v", list)
		}
	})
}

func equalBlocks(got, want []Block) bool {
	return slices.EqualFunc(got, want, func(x, y Block) bool {
		return x.Addr == y.Addr && x.Until.Equal(y.Until) && x.Failures == y.Failures
	})
}

func TestMemoryStore(t *testing.T) {
	t.Parallel()
	testStore(t, func(*testing.T) Store { return NewMemory(0) })
}

func TestMemoryIsBounded(t *testing.T) {
	t.Parallel()
	m := NewMemory(64)
	now := time.Unix(1_800_000_000, 0)
	lim := Limits{MaxFailures: 30, Window: time.Minute, BlockFor: time.Minute}
	for i := range 10_000 {
		addr := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		for range 3 {
			_, _, _ = m.Fail(context.Background(), addr, now, lim)
		}
	}
	if n := m.Len(); n > 64+lruShards || n == 0 {
		t.Fatalf("Len = %d after a spray of 10000 addresses, want at most about 64", n)
	}
}

func TestMemoryFailuresStayBounded(t *testing.T) {
	t.Parallel()
	m := NewMemory(0)
	addr := netip.MustParseAddr("192.0.2.7")
	now := time.Unix(1_800_000_000, 0)
	lim := Limits{MaxFailures: 30, Window: time.Minute, BlockFor: time.Minute}
	for range 1000 { // one failure every 2.5s: never more than 24 in a window
		now = now.Add(2500 * time.Millisecond)
		if b, _, _ := m.Fail(context.Background(), addr, now, lim); b.Until.After(now) || b.Failures > 24 {
			t.Fatalf("block or count %+v for a slow failer", b)
		}
	}
	s := m.records.shardOf(addr)
	s.mu.Lock()
	capacity := cap(s.get(addr).fails)
	s.mu.Unlock()
	if capacity > lim.MaxFailures+1 {
		t.Fatalf("failure times capacity %d, want at most %d", capacity, lim.MaxFailures+1)
	}
}
