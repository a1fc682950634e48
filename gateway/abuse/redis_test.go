package abuse

import (
	"context"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/testclock"
	"github.com/acme/shopgate/internal/testredis"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestRedisStore(t *testing.T) {
	t.Parallel()
	addr := testredis.Need(t)
	testStore(t, func(t *testing.T) Store {
		r := NewRedis(RedisConfig{Config: redisclient.Config{Addr: addr}, KeyPrefix: testredis.Prefix(t, "abuse")})
		t.Cleanup(func() { _ = r.Close() })
		return r
	})
}

// TestDetectorsShareRedis is two replicas on one Redis: failures add up across them, a block
// made by one is honoured by the other within redis.sync_interval, and so is a lift.
func TestDetectorsShareRedis(t *testing.T) {
	t.Parallel()
	cfg := Config{MaxFailures: 4, Backend: BackendRedis, Redis: RedisConfig{Config: redisclient.Config{Addr: testredis.Need(t)}, KeyPrefix: testredis.Prefix(t, "abuse")}}
	clock := testclock.New()
	a, b := newFixture(t, cfg, clock), newFixture(t, cfg, clock)
	sa, sb := serve(t, a.d), serve(t, b.d)
	const bad = "2001:db8::7"
	if resp, _ := sb.get(t, bad, http.StatusOK); resp.StatusCode != http.StatusOK { // b caches "not blocked"
		t.Fatalf("b: %d, want 200", resp.StatusCode)
	}
	for i := range 5 { // 5 failures, alternating replicas: more than 4
		s := sa
		if i%2 == 1 {
			s = sb
		}
		if resp, _ := s.get(t, bad, http.StatusUnauthorized); resp.StatusCode != http.StatusUnauthorized {
			t.Fatalf("failure %d: %d, want 401", i, resp.StatusCode)
		}
	}
	// The 5th failure went through a: a blocks at once.
	resp, body := sa.get(t, bad, http.StatusOK)
	checkBlocked(t, resp, body, "300")
	// b cached "not blocked" (its own failures did not make the block): it still passes the
	// address until its answer is a sync interval old, then refuses it.
	clock.Advance(DefaultSyncInterval - time.Millisecond)
	if resp, _ := sb.get(t, bad, http.StatusOK); resp.StatusCode != http.StatusOK {
		t.Fatalf("b within the sync interval: %d, want its cached 200", resp.StatusCode)
	}
	clock.Advance(time.Millisecond)
	resp, body = sb.get(t, bad, http.StatusOK)
	checkBlocked(t, resp, body, "299")
	if a.logs.Count("client address blocked")+b.logs.Count("client address blocked") != 1 {
		t.Fatal("the block was logged more or less than once across the replicas")
	}

	// A third replica that cached "not blocked" before the block sees it within sync_interval.
	c := newFixture(t, cfg, clock)
	sc := serve(t, c.d)
	const other = "192.0.2.77"
	sc.get(t, other, http.StatusOK)
	for range 5 {
		sa.get(t, other, http.StatusUnauthorized)
	}
	if resp, _ := sc.get(t, other, http.StatusOK); resp.StatusCode != http.StatusOK {
		t.Fatalf("c within the sync interval: %d, want its cached 200", resp.StatusCode)
	}
	clock.Advance(DefaultSyncInterval)
	resp, body = sc.get(t, other, http.StatusOK)
	checkBlocked(t, resp, body, "299")

	// A lift on c applies on c at once and on a within sync_interval.
	if err := c.d.Lift(context.Background(), netip.MustParseAddr(other)); err != nil {
		t.Fatal(err)
	}
	if resp, _ := sc.get(t, other, http.StatusOK); resp.StatusCode != http.StatusOK {
		t.Fatalf("c after its lift: %d, want 200", resp.StatusCode)
	}
	clock.Advance(DefaultSyncInterval)
	if resp, _ := sa.get(t, other, http.StatusOK); resp.StatusCode != http.StatusOK {
		t.Fatalf("a a sync interval after c's lift: %d, want 200", resp.StatusCode)
	}
	list, err := b.d.List(context.Background())
	if err != nil || len(list) != 1 || list[0].Addr != netip.MustParseAddr(bad) || list[0].Failures != 5 {
		t.Fatalf("List = %+v, %v; want only %s with 5 failures", list, err, bad)
	}
}

// TestRedisDownFailsOpen: with nothing listening where Redis should be, no request is refused
// for it or waits on it for long; each replica counts alone; the outage is logged once.
func TestRedisDownFailsOpen(t *testing.T) {
	t.Parallel()
	clock := testclock.New()
	f := newFixture(t, Config{MaxFailures: 3, Backend: BackendRedis, Redis: RedisConfig{Config: redisclient.Config{Addr: closedPort(t)}}}, clock)
	s := serve(t, f.d)
	for i := range 10 {
		start := time.Now()
		resp, body := s.get(t, "192.0.2.1", http.StatusOK)
		if took := time.Since(start); took > 600*time.Millisecond {
			t.Fatalf("request %d took %v while Redis is down", i, took)
		}
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("request %d: %d, want 200 while Redis is down (%s)", i, resp.StatusCode, body)
		}
		clock.Advance(100 * time.Millisecond)
	}
	for range 4 {
		s.get(t, "192.0.2.2", http.StatusUnauthorized)
	}
	resp, body := s.get(t, "192.0.2.2", http.StatusOK)
	checkBlocked(t, resp, body, "300")
	if n := f.logs.Count("abuse backend unreachable"); n != 1 {
		t.Fatalf("logged the outage %d times, want once", n)
	}
	if got := testutil.ToFloat64(f.d.metrics.degraded.WithLabelValues(BackendRedis)); got != 1 {
		t.Fatalf("degraded gauge %v, want 1", got)
	}
	if got := testutil.ToFloat64(f.d.metrics.backendErrors.WithLabelValues(BackendRedis)); got < 1 || got > 3 {
		t.Fatalf("backend errors %v, want one per probe interval (1 to 3 over ~1.4s)", got)
	}
	if _, err := f.d.List(context.Background()); err == nil {
		t.Fatal("List while Redis is down: no error; the operator must know the list is partial")
	}
}
