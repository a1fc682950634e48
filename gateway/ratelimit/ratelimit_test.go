package ratelimit

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/testclock"
	"github.com/acme/shopgate/internal/testredis"
)

func route(requests int, per time.Duration, burst int) *policy.Route {
	return &policy.Route{
		HTTPMethod: "GET", Path: "/v1/x", RPC: "/shop.test.v1.TestService/Get", Service: "shop.test.v1.TestService",
		Policy: policy.Policy{RateLimit: policy.RateLimit{Requests: requests, Per: per, Burst: burst}},
	}
}

// statusBody is the google.rpc.Status JSON the gateway writes.
type statusBody struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Details []struct {
		Type       string `json:"@type"`
		RetryDelay string `json:"retryDelay"`
	} `json:"details"`
}

func TestHeadersAndRefusal(t *testing.T) {
	t.Parallel()
	clock := testclock.New()
	reg := prometheus.NewRegistry()
	l, err := New(Config{}, Options{Now: clock.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	g := serve(t, l, route(2, time.Minute, 2)) // 2 per minute, burst 2: one every 30s
	tests := []struct {
		name        string
		advance     time.Duration
		wantStatus  int
		wantState   string
		wantRetry   string
		wantRetryIn string
	}{
		{"first", 0, 200, `"default";r=1;t=30`, "", ""},
		{"second", 0, 200, `"default";r=0;t=60`, "", ""},
		{"third refused", 0, 429, `"default";r=0;t=60`, "30", "30s"},
		{"refused, retry rounded up", 100 * time.Millisecond, 429, `"default";r=0;t=60`, "30", "30s"},
		{"after the interval", 30 * time.Second, 200, `"default";r=0;t=60`, "", ""},
	}
	for _, tt := range tests { // sequential: each step depends on the last
		t.Run(tt.name, func(t *testing.T) {
			clock.Advance(tt.advance)
			resp, body := g.get(t, nil)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (%s)", resp.StatusCode, tt.wantStatus, body)
			}
			wantPolicy := "" // on refusals only
			if tt.wantStatus == 429 {
				wantPolicy = `"default";q=2;w=60`
			}
			if got := resp.Header.Get("RateLimit-Policy"); got != wantPolicy {
				t.Fatalf("RateLimit-Policy = %q, want %q", got, wantPolicy)
			}
			if got := resp.Header.Get("RateLimit"); got != tt.wantState {
				t.Fatalf("RateLimit = %q, want %q", got, tt.wantState)
			}
			if got := resp.Header.Get("Retry-After"); got != tt.wantRetry {
				t.Fatalf("Retry-After = %q, want %q", got, tt.wantRetry)
			}
			if tt.wantStatus != 429 {
				return
			}
			var st statusBody
			if err := json.Unmarshal(body, &st); err != nil {
				t.Fatalf("body %s: %v", body, err)
			}
			if st.Code != 8 || st.Message != "rate limit exceeded" || len(st.Details) != 1 ||
				st.Details[0].Type != "type.googleapis.com/google.rpc.RetryInfo" || st.Details[0].RetryDelay != tt.wantRetryIn {
				t.Fatalf("body = %s, want RESOURCE_EXHAUSTED with RetryInfo %s", body, tt.wantRetryIn)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type = %q", ct)
			}
		})
	}
	if g.calls.Load() != 3 {
		t.Fatalf("upstream calls = %d, want 3", g.calls.Load())
	}
	rpc := "/shop.test.v1.TestService/Get"
	if a, lim := testutil.ToFloat64(l.metrics.requests.WithLabelValues(rpc, "allowed")), testutil.ToFloat64(l.metrics.requests.WithLabelValues(rpc, "limited")); a != 3 || lim != 2 {
		t.Fatalf("metrics allowed=%v limited=%v, want 3 and 2", a, lim)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	resolver, err := clientip.New(clientip.Config{TrustedProxies: []string{"127.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	// Every caller gets exactly one request; a second from the same caller is refused, one
	// from any other caller passes.
	tests := []struct {
		name   string
		first  map[string]string
		second map[string]string
		want   int
	}{
		{"same subject", map[string]string{"X-Test-Subject": "alice"}, map[string]string{"X-Test-Subject": "alice"}, 429},
		{"other subject", map[string]string{"X-Test-Subject": "alice"}, map[string]string{"X-Test-Subject": "bob"}, 200},
		{"api key and jwt of one subject are apart", map[string]string{"X-Test-Subject": "svc", "X-Test-Method": "apikey"}, map[string]string{"X-Test-Subject": "svc", "X-Test-Method": "jwt"}, 200},
		{"same api key", map[string]string{"X-Test-Subject": "svc", "X-Test-Method": "apikey"}, map[string]string{"X-Test-Subject": "svc", "X-Test-Method": "apikey"}, 429},
		{"anonymous same address", map[string]string{"X-Forwarded-For": "198.51.100.1"}, map[string]string{"X-Forwarded-For": "198.51.100.1"}, 429},
		{"anonymous other address", map[string]string{"X-Forwarded-For": "198.51.100.1"}, map[string]string{"X-Forwarded-For": "198.51.100.2"}, 200},
		{"anonymous spoofed left entry", map[string]string{"X-Forwarded-For": "198.51.100.1"}, map[string]string{"X-Forwarded-For": "6.6.6.6, 198.51.100.1"}, 429},
		{"anonymous and subject are apart", map[string]string{}, map[string]string{"X-Test-Subject": "alice"}, 200},
		{"anonymous ipv6", map[string]string{"X-Forwarded-For": "2001:db8::1"}, map[string]string{"X-Forwarded-For": "[2001:db8::1]:443"}, 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			l, err := New(Config{}, Options{Resolver: resolver})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			g := serve(t, l, route(1, time.Hour, 1))
			if resp, body := g.get(t, tt.first); resp.StatusCode != 200 {
				t.Fatalf("first: %d %s", resp.StatusCode, body)
			}
			if resp, body := g.get(t, tt.second); resp.StatusCode != tt.want {
				t.Fatalf("second: %d, want %d (%s)", resp.StatusCode, tt.want, body)
			}
		})
	}
}

func TestNoLimitPassesWithoutHeaders(t *testing.T) {
	t.Parallel()
	l, err := New(Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := serve(t, l, route(0, 0, 0))
	for range 5 {
		resp, _ := g.get(t, nil)
		if resp.StatusCode != 200 || resp.Header.Get("RateLimit") != "" {
			t.Fatalf("status %d, RateLimit %q; want 200 and no header", resp.StatusCode, resp.Header.Get("RateLimit"))
		}
	}
	if l.Local().Len() != 0 {
		t.Fatal("an unlimited route created keys")
	}
}

// TestRefusedBeforeBodyIsRead sends a request whose body never arrives: the refusal must come
// back anyway, so the stage did not wait on the body.
func TestRefusedBeforeBodyIsRead(t *testing.T) {
	t.Parallel()
	l, err := New(Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	g := serve(t, l, route(1, time.Hour, 1))
	if resp, _ := g.get(t, nil); resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, g.URL+"/v1/x", pr)
	req.ContentLength = 1 << 20
	resp, err := g.Client().Do(req)
	if err != nil {
		t.Fatalf("no answer without the body: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || g.calls.Load() != 1 {
		t.Fatalf("status %d, upstream calls %d; want 429 and 1", resp.StatusCode, g.calls.Load())
	}
}

// TestExactCountUnderConcurrency: N parallel clients against a limit of L requests with burst B
// in a window far longer than the test: exactly B pass, for both backends.
func TestExactCountUnderConcurrency(t *testing.T) {
	t.Parallel()
	const clients, perClient = 32, 8
	tests := []struct {
		name            string
		redis           bool
		requests, burst int
		wantPass        int
	}{
		{"memory, burst equal to the limit", false, 50, 50, 50},
		{"memory, burst above the limit", false, 10, 70, 70},
		{"memory, burst below the limit", false, 100, 5, 5},
		{"redis, burst equal to the limit", true, 50, 50, 50},
		{"redis, burst above the limit", true, 10, 70, 70},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := Config{}
			if tt.redis {
				cfg = Config{Backend: BackendRedis, Redis: RedisConfig{Config: redisclient.Config{Addr: testredis.Need(t), Timeout: 2 * time.Second}, KeyPrefix: testredis.Prefix(t, "rl"), FailureMode: FailClosed}}
			}
			l, err := New(cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			g := serve(t, l, route(tt.requests, time.Hour, tt.burst))
			counts := parallelGets(t, []*gateway{g}, clients, perClient)
			if counts[200] != tt.wantPass || counts[429] != clients*perClient-tt.wantPass {
				t.Fatalf("statuses %v, want exactly %d x 200 and %d x 429", counts, tt.wantPass, clients*perClient-tt.wantPass)
			}
			if g.calls.Load() != int64(tt.wantPass) {
				t.Fatalf("upstream reached %d times, want %d", g.calls.Load(), tt.wantPass)
			}
		})
	}
}

// TestTwoReplicasShareRedis: two stages (two gateway replicas) on one Redis hold the aggregate
// limit, and their burst is shared too.
func TestTwoReplicasShareRedis(t *testing.T) {
	t.Parallel()
	addr, prefix := testredis.Need(t), testredis.Prefix(t, "rl")
	const limit = 40
	var replicas []*gateway
	for range 2 {
		l, err := New(Config{Backend: BackendRedis, Redis: RedisConfig{Config: redisclient.Config{Addr: addr, Timeout: 2 * time.Second}, KeyPrefix: prefix, FailureMode: FailClosed}}, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = l.Close() })
		replicas = append(replicas, serve(t, l, route(limit, time.Hour, limit)))
	}
	counts := parallelGets(t, replicas, 20, 10)
	if counts[200] != limit || counts[429] != 200-limit {
		t.Fatalf("statuses %v, want exactly %d x 200 across both replicas", counts, limit)
	}
	if replicas[0].calls.Load() == 0 || replicas[1].calls.Load() == 0 {
		t.Fatalf("upstream calls %d and %d: both replicas should have served some", replicas[0].calls.Load(), replicas[1].calls.Load())
	}
}

// parallelGets runs clients goroutines of perClient requests each, spread over gateways, and
// counts the statuses.
func parallelGets(t *testing.T, gateways []*gateway, clients, perClient int) map[int]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for c := range clients {
		g := gateways[c%len(gateways)]
		wg.Go(func() {
			<-start
			for range perClient {
				resp, err := g.Client().Get(g.URL + "/v1/x")
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				mu.Lock()
				counts[resp.StatusCode]++
				mu.Unlock()
			}
		})
	}
	close(start)
	wg.Wait()
	return counts
}

func TestReloadKeepsLocalQuota(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	first, err := New(Config{}, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	g1 := serve(t, first, route(1, time.Hour, 1))
	if resp, _ := g1.get(t, nil); resp.StatusCode != 200 {
		t.Fatal("first request refused")
	}
	second, err := New(Config{}, Options{Registerer: reg, Local: first.Local()})
	if err != nil {
		t.Fatalf("reload on the same registry: %v", err)
	}
	_ = first.Close()
	g2 := serve(t, second, route(1, time.Hour, 1))
	if resp, _ := g2.get(t, nil); resp.StatusCode != 429 {
		t.Fatalf("after reload: %d, want 429 (quota kept)", resp.StatusCode)
	}
	if second.metrics.requests != first.metrics.requests {
		t.Fatal("reload registered a second counter instead of reusing the first")
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown backend", Config{Backend: "memcached"}, "backend"},
		{"negative max keys", Config{MaxKeys: -1}, "max_keys"},
		{"bad policy name", Config{PolicyName: `a"b`}, "policy_name"},
		{"bad failure mode", Config{Redis: RedisConfig{FailureMode: "maybe"}}, "failure_mode"},
		{"negative timeout", Config{Redis: RedisConfig{Config: redisclient.Config{Timeout: -time.Second}}}, "timeout"},
		{"negative probe interval", Config{Redis: RedisConfig{ProbeInterval: -time.Second}}, "probe_interval"},
		{"negative db", Config{Redis: RedisConfig{Config: redisclient.Config{DB: -1}}}, "redis.db -1"},
		{"negative pool size", Config{Redis: RedisConfig{Config: redisclient.Config{PoolSize: -1}}}, "redis.pool_size -1"},
		{"every bad value at once", Config{Backend: "x", MaxKeys: -1, Redis: RedisConfig{Config: redisclient.Config{Timeout: -1}, FailureMode: "x"}},
			"max_keys -1 is negative\nredis.timeout -1ns is negative\nredis.failure_mode"},
		{"addr and addrs", Config{Redis: RedisConfig{Config: redisclient.Config{Addr: "r:6379", Addrs: []string{"a:6379"}}}}, "redis.addr and addrs are both set"},
		{"db in a cluster", Config{Redis: RedisConfig{Config: redisclient.Config{Addrs: []string{"a:6379", "b:6379"}, DB: 1}}}, "redis.db 1: a Redis Cluster has database 0 only"},
		{"master name without sentinels", Config{Redis: RedisConfig{Config: redisclient.Config{MasterName: "m"}}}, "redis.master_name needs addrs"},
		{"address without port", Config{Redis: RedisConfig{Config: redisclient.Config{Addrs: []string{"a:6379", "b"}}}}, `redis.addrs[1]: "b" is not host:port`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg, Options{})
			if err == nil || !strings.HasPrefix(err.Error(), "creating rate limiter: ") || strings.Count(err.Error(), "creating rate limiter") != 1 || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want one about %s", err, tt.want)
			}
		})
	}
	l, err := New(Config{}, Options{})
	if err != nil {
		t.Fatalf("zero Config: %v", err)
	}
	if c := l.Local().Cap(); c < DefaultMaxKeys || c >= DefaultMaxKeys+shardCount {
		t.Fatalf("default capacity %d, want DefaultMaxKeys rounded up to a multiple of %d", c, shardCount)
	}
	_ = l.Close()
	_ = l.Close() // twice is fine
}

func BenchmarkMiddleware(b *testing.B) {
	l, err := New(Config{}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	rt := route(1_000_000_000, time.Second, 1_000_000_000)
	h := l.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	req, _ := http.NewRequest(http.MethodGet, "/v1/x", nil)
	req.RemoteAddr = "198.51.100.7:4711"
	req = req.WithContext(policy.NewContext(req.Context(), rt))
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (w *discardWriter) WriteHeader(int)             {}
