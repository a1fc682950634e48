package ratelimit

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// Ping makes the scripted primary a pinger, answering like Allow (counted, gated, failing).
func (b *scriptedBackend) Ping(ctx context.Context) error {
	_, err := b.Allow(ctx, "", limitOf1000)
	return err
}

// TestServing walks Serving through an outage on a fake clock (testing/synctest): failing
// open, it is true throughout and never asks the primary; failing closed, it pings the primary
// through the requests' breaker, so the first failed ping trips it (false, degraded), the
// primary is not asked again until a probe interval has passed, and the first ping after Redis
// is back closes it (true) with no request needed.
func TestServing(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	type step struct {
		name       string
		sleep      time.Duration
		primaryErr error
		want       map[string]bool // by failure mode
		wantCalls  map[string]int  // primary calls so far, by failure mode
		wantDown   float64         // the degraded gauge, failing closed
	}
	both := func(v bool) map[string]bool { return map[string]bool{FailOpen: true, FailClosed: v} }
	calls := func(n int) map[string]int { return map[string]int{FailOpen: 0, FailClosed: n} }
	steps := []step{
		{"redis up", 0, nil, both(true), calls(1), 0},
		{"redis away: the ping trips the breaker", 0, errRedisDown, both(false), calls(2), 1},
		{"open: false at once", 0, errRedisDown, both(false), calls(2), 1},
		{"redis back, still within the interval", interval / 2, nil, both(false), calls(2), 1},
		{"the ping after the interval is the probe", interval, nil, both(true), calls(3), 0},
		{"closed: asked each time", 0, nil, both(true), calls(4), 0},
	}
	for _, mode := range []string{FailOpen, FailClosed} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newFailoverProbe(mode, interval)
				l := &Limiter{backend: p.failover}
				for _, s := range steps {
					time.Sleep(s.sleep)
					p.primary.set(s.primaryErr, nil)
					if got := l.Serving(t.Context()); got != s.want[mode] {
						t.Fatalf("%s: Serving() = %v, want %v", s.name, got, s.want[mode])
					}
					if got := p.primary.count(); got != s.wantCalls[mode] {
						t.Fatalf("%s: primary called %d times, want %d", s.name, got, s.wantCalls[mode])
					}
					if got := testutil.ToFloat64(p.degraded); mode == FailClosed && got != s.wantDown {
						t.Fatalf("%s: degraded gauge %v, want %v", s.name, got, s.wantDown)
					}
				}
			})
		})
	}
}

// TestServingWithoutFailover: the memory backend and a custom one always serve.
func TestServingWithoutFailover(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		opts Options
	}{
		{"memory", Options{}},
		{"custom backend", Options{Backend: &scriptedBackend{err: errRedisDown}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(Config{}, tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !l.Serving(t.Context()) {
				t.Fatal("Serving() = false, want true")
			}
		})
	}
}

var errRedisDown = errors.New("dial tcp: connection refused")
