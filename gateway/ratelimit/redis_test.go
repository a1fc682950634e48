package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/testlog"
	"github.com/acme/shopgate/internal/testredis"
)

// answerBound is how long a request may take while Redis is away: one Redis timeout (100ms)
// for the probing request plus generous slack for the race detector.
const answerBound = 600 * time.Millisecond

func TestRedisClosedPort(t *testing.T) {
	t.Parallel()
	type test struct {
		name       string
		mode       string
		conn       func(t *testing.T) redisclient.Config
		wantStatus []int // per request of a limit of 2
	}
	var tests []test
	for _, c := range []struct {
		name string
		conn func(t *testing.T) redisclient.Config
	}{
		{"single node", func(t *testing.T) redisclient.Config { return redisclient.Config{Addr: closedPort(t)} }},
		{"cluster", func(t *testing.T) redisclient.Config {
			return redisclient.Config{Addrs: []string{closedPort(t), closedPort(t)}}
		}},
		{"sentinel", func(t *testing.T) redisclient.Config {
			return redisclient.Config{Addrs: []string{closedPort(t)}, MasterName: "m"}
		}},
	} {
		tests = append(tests,
			test{c.name + ", " + FailOpen, FailOpen, c.conn, []int{200, 200, 429, 429}},
			test{c.name + ", " + FailClosed, FailClosed, c.conn, []int{503, 503, 503, 503}})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			logs := &testlog.Buffer{}
			l, err := New(Config{Backend: BackendRedis, Redis: RedisConfig{Config: tt.conn(t), FailureMode: tt.mode}},
				Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatalf("New must not need Redis up: %v", err)
			}
			defer l.Close()
			g := serve(t, l, route(2, time.Hour, 2))
			for i, want := range tt.wantStatus {
				start := time.Now()
				resp, body := g.get(t, nil)
				if took := time.Since(start); took > answerBound {
					t.Fatalf("request %d took %v, want under %v", i, took, answerBound)
				}
				if resp.StatusCode != want {
					t.Fatalf("request %d: %d, want %d (%s)", i, resp.StatusCode, want, body)
				}
				if want == 503 {
					var st statusBody
					if err := json.Unmarshal(body, &st); err != nil || st.Code != 14 || st.Message != "rate limiter unavailable" {
						t.Fatalf("body %s, want UNAVAILABLE status", body)
					}
				}
			}
			if n := logs.Count("rate limit backend unreachable"); n != 1 {
				t.Fatalf("logged the outage %d times, want once", n)
			}
			if testutil.ToFloat64(l.metrics.degraded.WithLabelValues(BackendRedis)) != 1 {
				t.Fatal("degraded gauge not set")
			}
			if testutil.ToFloat64(l.metrics.backendErrors.WithLabelValues(BackendRedis)) < 1 {
				t.Fatal("backend errors not counted")
			}
		})
	}
}

// TestRedisStopsRespondingThenRecovers puts a TCP proxy between the stage and Redis, cuts it
// mid-test (connections stay open, nothing is answered), and restores it.
func TestRedisStopsRespondingThenRecovers(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{FailOpen, FailClosed} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			proxy := newTCPProxy(t, testredis.Need(t))
			logs := &testlog.Buffer{}
			reg := prometheus.NewRegistry()
			l, err := New(Config{Backend: BackendRedis, Redis: RedisConfig{
				Config: redisclient.Config{Addr: proxy.Addr()}, KeyPrefix: testredis.Prefix(t, "rl"), FailureMode: mode, ProbeInterval: 20 * time.Millisecond,
			}}, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			g := serve(t, l, route(1000, time.Hour, 1000))
			degraded := func() float64 { return testutil.ToFloat64(l.metrics.degraded.WithLabelValues(BackendRedis)) }

			// Redis up: answered by Redis. The first call dials through the proxy and loads the
			// script; on a loaded machine it may outlast the 100 ms timeout and count as an outage
			// of its own, so the counts below are taken from here on.
			pollUntil(t, 10*time.Second, "Redis answering before the cut", func() bool {
				resp, _ := g.get(t, nil)
				return resp.StatusCode == 200 && degraded() == 0
			})
			outages, recoveries := logs.Count("rate limit backend unreachable"), logs.Count("rate limit backend recovered")
			for range 3 {
				if resp, body := g.get(t, nil); resp.StatusCode != 200 {
					t.Fatalf("before the cut: %d %s", resp.StatusCode, body)
				}
			}
			if degraded() != 0 {
				t.Fatal("degraded before the cut")
			}

			proxy.Cut()
			want := 200
			if mode == FailClosed {
				want = 503
			}
			var slowest time.Duration
			for i := range 10 {
				start := time.Now()
				resp, body := g.get(t, nil)
				took := time.Since(start)
				slowest = max(slowest, took)
				if took > answerBound {
					t.Fatalf("request %d during the cut took %v, want under %v", i, took, answerBound)
				}
				if resp.StatusCode != want {
					t.Fatalf("request %d during the cut: %d, want %d (%s)", i, resp.StatusCode, want, body)
				}
			}
			if degraded() != 1 {
				t.Fatal("degraded gauge not set during the cut")
			}
			t.Logf("slowest answer during the cut: %v", slowest)

			proxy.Restore()
			pollUntil(t, 10*time.Second, "recovery", func() bool {
				resp, _ := g.get(t, nil)
				return resp.StatusCode == 200 && degraded() == 0
			})
			if n := logs.Count("rate limit backend unreachable") - outages; n != 1 {
				t.Fatalf("logged the outage %d times, want once", n)
			}
			if n := logs.Count("rate limit backend recovered") - recoveries; n != 1 {
				t.Fatalf("logged the recovery %d times, want once", n)
			}
		})
	}
}

// scriptedBackend is a primary whose answer the test sets: an error, or success; while gate is
// not nil, each call waits for it to be closed first.
type scriptedBackend struct {
	mu    sync.Mutex
	err   error
	gate  chan struct{}
	calls int
}

func (b *scriptedBackend) set(err error, gate chan struct{}) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err, b.gate = err, gate
}

func (b *scriptedBackend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.calls
}

func (b *scriptedBackend) Allow(ctx context.Context, _ string, _ policy.RateLimit) (Result, error) {
	b.mu.Lock()
	b.calls++
	err, gate := b.err, b.gate
	b.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return Result{}, ctx.Err()
		}
	}
	if err != nil {
		return Result{}, err
	}
	return Result{Allowed: true, Remaining: 7}, nil
}

// failoverProbe is a failover over a scripted primary, with its log and metrics.
type failoverProbe struct {
	*failover
	primary  *scriptedBackend
	logs     *testlog.Buffer
	errors   prometheus.Counter
	degraded prometheus.Gauge
}

func newFailoverProbe(mode string, interval time.Duration) *failoverProbe {
	p := &failoverProbe{
		primary:  &scriptedBackend{},
		logs:     &testlog.Buffer{},
		errors:   prometheus.NewCounter(prometheus.CounterOpts{Name: "errors"}),
		degraded: prometheus.NewGauge(prometheus.GaugeOpts{Name: "degraded"}),
	}
	var local Backend
	if mode == FailOpen {
		local = NewMemory(0, nil)
	}
	p.failover = newFailover(p.primary, local, interval, slog.New(slog.NewJSONHandler(p.logs, nil)), p.errors, p.degraded)
	return p
}

var limitOf1000 = policy.RateLimit{Requests: 1000, Per: time.Hour, Burst: 1000}

// TestFailoverStates walks the breaker through an outage on a fake clock (testing/synctest:
// time.Sleep moves the clock at once): the first failure trips it, the primary is then skipped
// until a probe interval has passed, one failed probe keeps it open for another interval, and a
// successful probe closes it. Each transition is logged once and the gauge follows.
func TestFailoverStates(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	redisDown := errors.New("dial tcp: connection refused")
	type step struct {
		name        string
		sleep       time.Duration
		primaryErr  error
		wantPrimary bool // answered by the primary, else by the failure mode
		wantCalls   int  // primary calls so far
		wantErrs    float64
		wantDown    float64
		wantLogs    [2]int // "unreachable", "recovered" lines so far
	}
	steps := []step{
		{"redis up", 0, nil, true, 1, 0, 0, [2]int{0, 0}},
		{"first failure trips", 0, redisDown, false, 2, 1, 1, [2]int{1, 0}},
		{"open: primary skipped", 0, redisDown, false, 2, 1, 1, [2]int{1, 0}},
		{"still open just before the interval", interval - time.Millisecond, redisDown, false, 2, 1, 1, [2]int{1, 0}},
		{"probe after the interval fails", 2 * time.Millisecond, redisDown, false, 3, 2, 1, [2]int{1, 0}},
		{"reopened: primary skipped", interval / 2, nil, false, 3, 2, 1, [2]int{1, 0}},
		{"probe after another interval recovers", interval, nil, true, 4, 2, 0, [2]int{1, 1}},
		{"closed: primary asked", 0, nil, true, 5, 2, 0, [2]int{1, 1}},
	}
	for _, mode := range []string{FailOpen, FailClosed} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newFailoverProbe(mode, interval)
				for _, s := range steps {
					time.Sleep(s.sleep)
					p.primary.set(s.primaryErr, nil)
					res, err := p.Allow(t.Context(), "k", limitOf1000)
					switch {
					case s.wantPrimary && (err != nil || res.Remaining != 7):
						t.Fatalf("%s: %+v, %v; want the primary's answer", s.name, res, err)
					case !s.wantPrimary && mode == FailOpen && (err != nil || !res.Allowed || res.Remaining == 7):
						t.Fatalf("%s: %+v, %v; want the local limiter's answer", s.name, res, err)
					case !s.wantPrimary && mode == FailClosed && !errors.Is(err, ErrUnavailable):
						t.Fatalf("%s: %+v, %v; want ErrUnavailable", s.name, res, err)
					}
					if got := p.primary.count(); got != s.wantCalls {
						t.Fatalf("%s: primary called %d times, want %d", s.name, got, s.wantCalls)
					}
					if got := testutil.ToFloat64(p.errors); got != s.wantErrs {
						t.Fatalf("%s: errors counter %v, want %v", s.name, got, s.wantErrs)
					}
					if got := testutil.ToFloat64(p.degraded); got != s.wantDown {
						t.Fatalf("%s: degraded gauge %v, want %v", s.name, got, s.wantDown)
					}
					logs := [2]int{p.logs.Count(`"rate limit backend unreachable; failing ` + mode + `"`), p.logs.Count(`"rate limit backend recovered"`)}
					if logs != s.wantLogs {
						t.Fatalf("%s: (unreachable, recovered) logged %v times, want %v", s.name, logs, s.wantLogs)
					}
				}
				if p.logs.Count(redisDown.Error()) != 1 {
					t.Fatalf("the outage's line does not carry the error: %s", p.logs.String())
				}
			})
		})
	}
}

// TestFailoverOneProbeAtATime: while one request probes a Redis that does not answer, the
// others go to the failure mode without waiting.
func TestFailoverOneProbeAtATime(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		const interval = time.Second
		p := newFailoverProbe(FailOpen, interval)
		p.primary.set(errors.New("i/o timeout"), nil)
		if _, err := p.Allow(t.Context(), "k", limitOf1000); err != nil {
			t.Fatal(err)
		}
		time.Sleep(interval + time.Millisecond)
		gate := make(chan struct{})
		p.primary.set(nil, gate)
		probed := make(chan error, 1)
		go func() {
			_, err := p.Allow(context.Background(), "k", limitOf1000)
			probed <- err
		}()
		synctest.Wait() // the probe is inside the primary, waiting on gate
		for i := range 5 {
			if res, err := p.Allow(t.Context(), "k", limitOf1000); err != nil || res.Remaining == 7 {
				t.Fatalf("request %d during the probe: %+v, %v; want the local answer", i, res, err)
			}
		}
		if got := p.primary.count(); got != 2 {
			t.Fatalf("primary called %d times, want 2 (the failure and one probe)", got)
		}
		close(gate)
		if err := <-probed; err != nil {
			t.Fatalf("probe: %v", err)
		}
		if testutil.ToFloat64(p.degraded) != 0 || p.logs.Count("rate limit backend recovered") != 1 {
			t.Fatal("the successful probe did not close the breaker")
		}
	})
}

// TestFailoverCallerGoneSaysNothing: a caller that goes away while the primary works on its
// request gets its own error back, and the breaker neither counts nor trips on it.
func TestFailoverCallerGoneSaysNothing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		ctx  func(context.Context) (context.Context, context.CancelFunc)
		want error
	}{
		{"canceled", context.WithCancel, context.Canceled},
		{"deadline", func(ctx context.Context) (context.Context, context.CancelFunc) {
			return context.WithTimeout(ctx, 50*time.Millisecond) // on the bubble's clock
		}, context.DeadlineExceeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newFailoverProbe(FailClosed, time.Second)
				p.primary.set(nil, make(chan struct{})) // never answers
				ctx, cancel := tt.ctx(t.Context())
				defer cancel()
				if tt.want == context.Canceled {
					go func() { synctest.Wait(); cancel() }() // once Allow waits on the primary
				}
				if _, err := p.Allow(ctx, "k", limitOf1000); !errors.Is(err, tt.want) {
					t.Fatalf("Allow = %v, want %v", err, tt.want)
				}
				if testutil.ToFloat64(p.errors) != 0 || testutil.ToFloat64(p.degraded) != 0 || p.logs.Count("unreachable") != 0 {
					t.Fatal("the caller's own cancellation was taken for a Redis failure")
				}
				p.primary.set(nil, nil)
				if res, err := p.Allow(t.Context(), "k", limitOf1000); err != nil || res.Remaining != 7 {
					t.Fatalf("next request: %+v, %v; want the primary's answer", res, err)
				}
			})
		})
	}
}

// panickingBackend panics on every call.
type panickingBackend struct{}

func (panickingBackend) Allow(context.Context, string, policy.RateLimit) (Result, error) {
	panic("backend bug")
}

// TestFailoverProbeThatEndsOddly: a probe whose caller goes away tells nothing, so the next
// request probes at once; a probe that panics counts as a failure, so the next probe comes an
// interval later. Either way the breaker is not left waiting on a probe that never reports.
func TestFailoverProbeThatEndsOddly(t *testing.T) {
	t.Parallel()
	const interval = time.Second
	tests := []struct {
		name      string
		probe     func(t *testing.T, p *failoverProbe)
		nextAfter time.Duration // when the next probe may come
	}{
		{"caller gone", func(t *testing.T, p *failoverProbe) {
			p.primary.set(nil, make(chan struct{})) // never answers
			ctx, cancel := context.WithCancel(t.Context())
			go func() { synctest.Wait(); cancel() }()
			if _, err := p.Allow(ctx, "k", limitOf1000); !errors.Is(err, context.Canceled) {
				t.Fatalf("probe: %v, want context.Canceled", err)
			}
		}, 0},
		{"panic", func(t *testing.T, p *failoverProbe) {
			primary := p.failover.primary
			p.failover.primary = panickingBackend{}
			defer func() {
				p.failover.primary = primary
				if recover() == nil {
					t.Fatal("the probe's panic was swallowed")
				}
			}()
			_, _ = p.Allow(t.Context(), "k", limitOf1000)
		}, interval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newFailoverProbe(FailClosed, interval)
				p.primary.set(errors.New("connection refused"), nil)
				_, _ = p.Allow(t.Context(), "k", limitOf1000) // trips
				time.Sleep(interval + time.Millisecond)
				tt.probe(t, p)
				if testutil.ToFloat64(p.degraded) != 1 || p.logs.Count("recovered") != 0 {
					t.Fatal("an odd probe ended the failure mode")
				}
				p.primary.set(nil, nil)
				if tt.nextAfter > 0 {
					if _, err := p.Allow(t.Context(), "k", limitOf1000); !errors.Is(err, ErrUnavailable) {
						t.Fatalf("before the next interval: %v, want ErrUnavailable", err)
					}
					time.Sleep(tt.nextAfter + time.Millisecond)
				}
				if res, err := p.Allow(t.Context(), "k", limitOf1000); err != nil || res.Remaining != 7 {
					t.Fatalf("next probe: %+v, %v; want the primary's answer", res, err)
				}
				if testutil.ToFloat64(p.degraded) != 0 || p.logs.Count("rate limit backend recovered") != 1 {
					t.Fatal("the next probe did not close the breaker")
				}
			})
		})
	}
}
