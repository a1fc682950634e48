package ratelimit

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
)

// syncBuffer is a log sink the stage writes to from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) count(s string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Count(b.buf.String(), s)
}

// answerBound is how long a request may take while Redis is away: one Redis timeout (100ms)
// for the probing request plus generous slack for the race detector.
const answerBound = 600 * time.Millisecond

func TestRedisClosedPort(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode       string
		wantStatus []int // per request of a limit of 2
	}{
		{FailOpen, []int{200, 200, 429, 429}},
		{FailClosed, []int{503, 503, 503, 503}},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			logs := &syncBuffer{}
			l, err := New(Config{Backend: BackendRedis, Redis: RedisConfig{Addr: closedPort(t), FailureMode: tt.mode}},
				Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registerer: prometheus.NewRegistry()})
			if err != nil {
				t.Fatalf("New must not need Redis up: %v", err)
			}
			defer l.Close()
			g := serve(t, l, route(2, time.Hour, 0))
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
			if n := logs.count("rate limit backend unreachable"); n != 1 {
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
			proxy := newTCPProxy(t, needRedis(t))
			logs := &syncBuffer{}
			reg := prometheus.NewRegistry()
			l, err := New(Config{Backend: BackendRedis, Redis: RedisConfig{
				Addr: proxy.Addr(), KeyPrefix: uniquePrefix(t), FailureMode: mode, ProbeInterval: 20 * time.Millisecond,
			}}, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			g := serve(t, l, route(1000, time.Hour, 0))
			degraded := func() float64 { return testutil.ToFloat64(l.metrics.degraded.WithLabelValues(BackendRedis)) }

			// Redis up: answered by Redis. The first call dials through the proxy and loads the
			// script; on a loaded machine it may outlast the 100 ms timeout and count as an outage
			// of its own, so the counts below are taken from here on.
			pollUntil(t, 10*time.Second, "Redis answering before the cut", func() bool {
				resp, _ := g.get(t, nil)
				return resp.StatusCode == 200 && degraded() == 0
			})
			outages, recoveries := logs.count("rate limit backend unreachable"), logs.count("rate limit backend recovered")
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
			if n := logs.count("rate limit backend unreachable") - outages; n != 1 {
				t.Fatalf("logged the outage %d times, want once", n)
			}
			if n := logs.count("rate limit backend recovered") - recoveries; n != 1 {
				t.Fatalf("logged the recovery %d times, want once", n)
			}
		})
	}
}

func TestRedisLogger(t *testing.T) {
	t.Parallel()
	var buf syncBuffer
	l := RedisLogger{Logger: slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	l.Printf(t.Context(), "dial %s: %v", "127.0.0.1:1", "refused")
	if got := buf.count(`"msg":"dial 127.0.0.1:1: refused","component":"go-redis"`); got != 1 {
		t.Fatalf("log = %s", buf.buf.String())
	}
}

// RedisLogger must fit go-redis's SetLogger (checked at compile time, never called).
var _ = func() { redis.SetLogger(RedisLogger{}) }
