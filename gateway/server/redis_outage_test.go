package server

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// This file tests the Redis rate limit backend end to end: two real gateways sharing one real
// redis-server that the test starts, kills mid-test and restarts on the same port (issue 4:
// "Two gateway instances sharing Redis hold the aggregate limit; Redis stopped mid-test behaves
// as configured, then recovers"). It never touches a Redis on 6379.

// The limit of the test route: 10 requests an hour, burst 10, so nothing refills during a test.
const (
	redisOutageLimit   = 10
	redisOutagePolicy  = `"default";q=10;w=3600`
	redisOutageItem    = "/v1/inventory/items/sku-1"
	redisOutageTimeout = 100 * time.Millisecond // rate_limiting.redis.timeout (the default)
	redisOutageProbe   = 300 * time.Millisecond // rate_limiting.redis.probe_interval
	// redisOutageAnswer bounds every answer while Redis is away: at most one Redis timeout for
	// the probing request, with ample slack for the race detector on two shared cores.
	redisOutageAnswer = time.Second
	// redisOutageSlow is an answer that waited on Redis: half its timeout, where an answer that
	// did not takes a few milliseconds.
	redisOutageSlow = redisOutageTimeout / 2
)

// redisOutageServer is a redis-server process of the test's own, on a free loopback port.
type redisOutageServer struct {
	bin  string
	port int
	addr string
	dir  string

	mu   sync.Mutex // guards cmd, done, out of the current process
	cmd  *exec.Cmd
	done chan struct{} // closed when the process has been waited for
	out  *bytes.Buffer // stdout and stderr; read only after done
}

// startRedisOutageServer finds redis-server (skipping the test without it, failing it on CI),
// starts it on a free port and waits until it answers PING. The process is killed and waited
// for at the end of the test.
func startRedisOutageServer(t *testing.T) *redisOutageServer {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("redis-server not found on PATH (required on CI): %v", err)
		}
		t.Skipf("redis-server not found on PATH; install Redis to run this test: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	if port == 6379 {
		t.Fatal("the free port is 6379, the machine's shared Redis: refusing")
	}
	r := &redisOutageServer{bin: bin, port: port, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: t.TempDir()}
	t.Cleanup(r.kill)
	r.start(t)
	return r
}

// start runs the process on r.port and waits (bounded) for it to answer PING.
func (r *redisOutageServer) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(r.bin,
		"--port", strconv.Itoa(r.port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--daemonize", "no", "--dir", r.dir)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting redis-server: %v", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = cmd.Wait() }()
	r.mu.Lock()
	r.cmd, r.done, r.out = cmd, done, out
	r.mu.Unlock()

	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("redis-server on port %d exited at start:\n%s", r.port, out.String())
		default:
		}
		if reply, err := redisOutageCmd(r.addr, "PING"); err == nil && reply == "+PONG" {
			return
		}
		if time.Now().After(deadline) {
			r.kill()
			t.Fatalf("redis-server on port %d did not answer PING within 10s:\n%s", r.port, out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL to the current process, if any, and waits for it. Safe to call twice.
func (r *redisOutageServer) kill() {
	r.mu.Lock()
	cmd, done := r.cmd, r.done
	r.cmd = nil
	r.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-done
}

// pause stops the process (SIGSTOP): the kernel still accepts connections and buffers what is
// written to them, but nothing answers, so every call to it runs into the client's timeout.
func (r *redisOutageServer) pause(t *testing.T) { r.signal(t, syscall.SIGSTOP) }

// resume continues a paused process (SIGCONT).
func (r *redisOutageServer) resume(t *testing.T) { r.signal(t, syscall.SIGCONT) }

func (r *redisOutageServer) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	r.mu.Lock()
	cmd := r.cmd
	r.mu.Unlock()
	if cmd == nil {
		t.Fatalf("redis-server is not running (signal %v)", sig)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v to redis-server: %v", sig, err)
	}
}

// flushAll empties the server.
func (r *redisOutageServer) flushAll(t *testing.T) {
	t.Helper()
	if reply, err := redisOutageCmd(r.addr, "FLUSHALL"); err != nil || reply != "+OK" {
		t.Fatalf("FLUSHALL: %q %v", reply, err)
	}
}

// redisOutageCmd sends one inline command over a new connection and returns the first line of
// the reply.
func redisOutageCmd(addr, cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, 500*time.Millisecond)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(time.Second))
	if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
		return "", err
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	return strings.TrimRight(line, "\r\n"), err
}

// redisOutageLog is a log sink written from several goroutines.
type redisOutageLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *redisOutageLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// count returns how many JSON lines have msg as their message.
func (l *redisOutageLog) count(t *testing.T, msg string) int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range bytes.Split(l.buf.Bytes(), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == msg {
			n++
		}
	}
	return n
}

// redisOutageGateway is one of the two gateways with its log.
type redisOutageGateway struct {
	name string
	gw   *gateway
	log  *redisOutageLog
	slow int // answers that took redisOutageSlow or more
}

// get requests the limited route and fails the test if the answer took longer than bound.
func (g *redisOutageGateway) get(t *testing.T, client *http.Client, bound time.Duration) reply {
	t.Helper()
	start := time.Now()
	r := do(t, client, "GET", g.gw.url+redisOutageItem, nil, customer())
	took := time.Since(start)
	if took > bound {
		t.Fatalf("%s: answered %d after %v, want under %v", g.name, r.status, took, bound)
	}
	if took >= redisOutageSlow {
		g.slow++
	}
	if r.status == http.StatusInternalServerError {
		t.Fatalf("%s: 500: %s", g.name, r.body)
	}
	return r
}

// metric returns the value of the rate limit metric name{backend="redis"} from /metrics.
func (g *redisOutageGateway) metric(t *testing.T, client *http.Client, name string) float64 {
	t.Helper()
	r := do(t, client, "GET", g.gw.url+PathMetrics, nil, nil)
	if r.status != 200 {
		t.Fatalf("%s: /metrics: %d", g.name, r.status)
	}
	prefix := name + `{backend="redis"} `
	for _, line := range strings.Split(string(r.body), "\n") {
		if v, ok := strings.CutPrefix(line, prefix); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("%s: metric line %q: %v", g.name, line, err)
			}
			return f
		}
	}
	t.Fatalf("%s: /metrics has no %s{backend=\"redis\"}", g.name, name)
	return 0
}

func (g *redisOutageGateway) degraded(t *testing.T, client *http.Client) float64 {
	return g.metric(t, client, "gateway_ratelimit_backend_degraded")
}

func (g *redisOutageGateway) backendErrors(t *testing.T, client *http.Client) float64 {
	return g.metric(t, client, "gateway_ratelimit_backend_errors_total")
}

// checkRedisOutageAllowed checks a 200 of the limited route.
func checkRedisOutageAllowed(t *testing.T, who string, i int, r reply) {
	t.Helper()
	if r.status != 200 {
		t.Fatalf("%s request %d: %d, want 200: %s", who, i, r.status, r.body)
	}
	if got := r.header.Get("RateLimit"); got == "" || r.header.Get("RateLimit-Policy") != "" {
		t.Errorf("%s request %d: RateLimit %q, RateLimit-Policy %q; want the state, and the policy on 429s only", who, i, got, r.header.Get("RateLimit-Policy"))
	}
	if r.header.Get("RateLimit") == "" {
		t.Errorf("%s request %d: no RateLimit header", who, i)
	}
}

// checkRedisOutageLimited checks a 429: RESOURCE_EXHAUSTED with RetryInfo and a Retry-After
// within the hour of the limit.
func checkRedisOutageLimited(t *testing.T, who string, i int, r reply) {
	t.Helper()
	if r.status != http.StatusTooManyRequests {
		t.Fatalf("%s request %d: %d, want 429: %s", who, i, r.status, r.body)
	}
	ra, err := strconv.Atoi(r.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 3600 {
		t.Fatalf("%s request %d: Retry-After %q, want whole seconds in [1, 3600]", who, i, r.header.Get("Retry-After"))
	}
	code, _, details := r.rpcStatus(t)
	if code != 8 {
		t.Fatalf("%s request %d: code %d, want 8 RESOURCE_EXHAUSTED: %s", who, i, code, r.body)
	}
	retryInfo := false
	for _, d := range details {
		if typ, _ := d["@type"].(string); strings.HasSuffix(typ, "google.rpc.RetryInfo") {
			retryInfo = true
		}
	}
	if !retryInfo {
		t.Fatalf("%s request %d: no RetryInfo in %s", who, i, r.body)
	}
}

// checkRedisOutageUnavailable checks the fail-closed 503: UNAVAILABLE, "rate limiter unavailable".
func checkRedisOutageUnavailable(t *testing.T, who string, i int, r reply) {
	t.Helper()
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("%s request %d: %d, want 503: %s", who, i, r.status, r.body)
	}
	code, msg, _ := r.rpcStatus(t)
	if code != 14 || msg != "rate limiter unavailable" {
		t.Fatalf("%s request %d: code %d %q, want 14 \"rate limiter unavailable\"", who, i, code, msg)
	}
}

// sharedLimitHolds alternates 2*limit requests between the gateways from one caller and checks
// that exactly the first limit pass across both (half on each), and that the rest get 429.
func sharedLimitHolds(t *testing.T, client *http.Client, gws []*redisOutageGateway, phase string) {
	t.Helper()
	passed := map[string]int{}
	for i := range 2 * redisOutageLimit {
		g := gws[i%len(gws)]
		r := g.get(t, client, redisOutageAnswer)
		who := phase + " " + g.name
		if i < redisOutageLimit {
			checkRedisOutageAllowed(t, who, i, r)
			passed[g.name]++
		} else {
			checkRedisOutageLimited(t, who, i, r)
		}
	}
	for _, g := range gws {
		if passed[g.name] != redisOutageLimit/len(gws) {
			t.Fatalf("%s: %s passed %d, want %d", phase, g.name, passed[g.name], redisOutageLimit/len(gws))
		}
	}
}

// concurrentSharedLimitHolds sends 4*limit requests of one caller from 8 goroutines, spread over
// the gateways, and checks that exactly limit pass in total and the rest get 429 with
// Retry-After.
func concurrentSharedLimitHolds(t *testing.T, client *http.Client, gws []*redisOutageGateway) {
	t.Helper()
	const workers, perWorker = 8, redisOutageLimit / 2
	type answer struct {
		status     int
		retryAfter string
		took       time.Duration
		err        error
	}
	answers := make(chan answer, workers*perWorker)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				g := gws[(w+i)%len(gws)]
				req, err := http.NewRequest("GET", g.gw.url+redisOutageItem, nil)
				if err != nil {
					answers <- answer{err: err}
					return
				}
				req.Header = customer()
				start := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					answers <- answer{err: err}
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				answers <- answer{status: resp.StatusCode, retryAfter: resp.Header.Get("Retry-After"), took: time.Since(start)}
			}
		}()
	}
	wg.Wait()
	close(answers)
	passed, n := 0, 0
	for a := range answers {
		n++
		switch {
		case a.err != nil:
			t.Fatalf("concurrent request: %v", a.err)
		case a.took > redisOutageAnswer:
			t.Fatalf("concurrent request answered %d after %v, want under %v", a.status, a.took, redisOutageAnswer)
		case a.status == 200:
			passed++
		case a.status == http.StatusTooManyRequests:
			if ra, err := strconv.Atoi(a.retryAfter); err != nil || ra < 1 {
				t.Fatalf("concurrent 429 with Retry-After %q", a.retryAfter)
			}
		default:
			t.Fatalf("concurrent request: %d, want 200 or 429", a.status)
		}
	}
	if n != workers*perWorker || passed != redisOutageLimit {
		t.Fatalf("concurrently: %d of %d passed across the gateways, want exactly %d of %d", passed, n, redisOutageLimit, workers*perWorker)
	}
}

// TestRedisOutageTwoGateways runs two real gateways sharing a real redis-server of the test's
// own, for each failure mode and each kind of outage:
//
//  1. Redis up: one aggregate limit across both gateways (exactly 10 of the caller's requests
//     pass, alternating between them; the rest get 429 with Retry-After).
//  2. Redis away, either killed (SIGKILL and waited for: connections refused at once) or paused
//     (SIGSTOP: connections accepted, nothing answered, so every call runs into the timeout):
//     fail-closed answers 503 UNAVAILABLE, fail-open answers from each gateway's own in-memory
//     limiter (its full quota of 10, then 429); every answer within a second, none 500; at
//     least one more probe of the dead Redis happens, no more than one per probe interval, and
//     only a probing request ever waits on Redis (the others answer at once).
//  3. Redis back (restarted on the same port, or SIGCONT): each gateway's probe finds it again
//     within a bounded poll; the degraded gauge and the log lines follow the outage.
//  4. After FLUSHALL, the shared limit holds again across both, alternating and then under
//     concurrency (8 goroutines over both gateways: exactly 10 pass).
func TestRedisOutageTwoGateways(t *testing.T) {
	for _, tt := range []struct{ mode, outage string }{
		{"closed", "killed"},
		{"open", "killed"},
		{"closed", "paused"},
		{"open", "paused"},
	} {
		t.Run(tt.mode+"/"+tt.outage, func(t *testing.T) {
			mode := tt.mode
			rs := startRedisOutageServer(t)
			be := startBackend(t)
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}, Timeout: 5 * time.Second}
			yaml := baseYAML(be.addr, fmt.Sprintf(`
rate_limiting:
  backend: redis
  redis: {addr: %q, key_prefix: "redis-outage-%s:", failure_mode: %s, timeout: %v, probe_interval: %v}
routes:
  shop.inventory.v1.InventoryService/GetItem: {rate_limit: {requests: %d, per: 1h, burst: %d}}
`, rs.addr, mode, mode, redisOutageTimeout, redisOutageProbe, redisOutageLimit, redisOutageLimit))
			var gws []*redisOutageGateway
			for _, name := range []string{"gateway A", "gateway B"} {
				l := &redisOutageLog{}
				gw := startGateway(t, yaml, Options{Logger: slog.New(slog.NewJSONHandler(l, nil)), AccessLog: discardLogger()})
				gw.waitReady(t)
				gws = append(gws, &redisOutageGateway{name: name, gw: gw, log: l})
			}
			// Registered after the gateways, so it runs before their Shutdown: a connection the
			// transport dialed but never used would otherwise hold Shutdown for 5s (net/http
			// counts a new connection as idle only after 5s).
			t.Cleanup(client.CloseIdleConnections)
			// spent checks an answer once the caller's quota is used up everywhere: the failure
			// mode's answer (503 closed, 429 from the spent local quota open).
			spent := func(who string, i int, r reply) {
				t.Helper()
				if mode == "closed" {
					checkRedisOutageUnavailable(t, who, i, r)
				} else {
					checkRedisOutageLimited(t, who, i, r)
				}
			}

			// 1. Redis up: one aggregate limit across both gateways.
			rs.flushAll(t)
			sharedLimitHolds(t, client, gws, "redis up")
			for _, g := range gws {
				if d, e := g.degraded(t, client), g.backendErrors(t, client); d != 0 || e != 0 {
					t.Fatalf("%s with Redis up: degraded %v, backend errors %v, want 0 and 0", g.name, d, e)
				}
			}

			// 2. Redis away: the failure mode, fast, never a 500.
			if tt.outage == "killed" {
				rs.kill()
			} else {
				rs.pause(t)
			}
			away := time.Now()
			for _, g := range gws {
				g.slow = 0
			}
			const perGateway = redisOutageLimit + 5
			passed := map[string]int{}
			for i := range 2 * perGateway {
				g := gws[i%2]
				r := g.get(t, client, redisOutageAnswer)
				who := "redis " + tt.outage + " " + g.name
				if mode == "open" && i/2 < redisOutageLimit { // the gateway's own, fresh local quota
					checkRedisOutageAllowed(t, who, i, r)
					passed[g.name]++
				} else {
					spent(who, i, r)
				}
			}
			for _, g := range gws {
				if mode == "open" && passed[g.name] != redisOutageLimit {
					t.Fatalf("redis %s: %s passed %d from its local limiter, want %d", tt.outage, g.name, passed[g.name], redisOutageLimit)
				}
				// Keep asking until a later probe has met the dead Redis too (bounded).
				deadline := time.Now().Add(5 * time.Second)
				for i := 0; g.backendErrors(t, client) < 2; i++ {
					if time.Now().After(deadline) {
						t.Fatalf("%s: no second probe of the dead Redis within 5s", g.name)
					}
					time.Sleep(20 * time.Millisecond)
					spent("redis "+tt.outage+" (probing) "+g.name, i, g.get(t, client, redisOutageAnswer))
				}
			}
			outage := time.Since(away)
			for _, g := range gws {
				if d := g.degraded(t, client); d != 1 {
					t.Fatalf("%s with Redis %s: degraded %v, want 1", g.name, tt.outage, d)
				}
				// Only one request per probe interval tries the dead Redis.
				maxErrs := 2 + float64(outage/redisOutageProbe)
				e := g.backendErrors(t, client)
				if e < 2 || e > maxErrs {
					t.Fatalf("%s with Redis %s for %v: %v backend errors, want 2..%v (one probe per %v)", g.name, tt.outage, outage, e, maxErrs, redisOutageProbe)
				}
				// Only the probes (each a backend error) may have waited on Redis.
				if float64(g.slow) > e {
					t.Fatalf("%s with Redis %s: %d answers took %v or more, but only %v probes failed", g.name, tt.outage, g.slow, redisOutageSlow, e)
				}
				t.Logf("%s with Redis %s for %v: %v failed probes, %d slow answers", g.name, tt.outage, outage.Round(time.Millisecond), e, g.slow)
				if n := g.log.count(t, "rate limit backend unreachable; failing "+mode); n != 1 {
					t.Fatalf("%s logged the outage %d times, want once", g.name, n)
				}
			}

			// 3. Redis back: each gateway's probe finds it again.
			if tt.outage == "killed" {
				rs.start(t) // the same port, empty
			} else {
				rs.resume(t) // the quota of step 1 is still spent in it
			}
			deadline := time.Now().Add(10 * time.Second)
			for _, g := range gws {
				for i := 0; ; i++ {
					r := g.get(t, client, redisOutageAnswer)
					who := "redis back " + g.name
					if r.status == 200 { // only Redis can allow: the local quota is spent
						checkRedisOutageAllowed(t, who, i, r)
					} else if mode == "open" || r.status == http.StatusTooManyRequests {
						checkRedisOutageLimited(t, who, i, r) // open: local or Redis; closed: Redis
					} else {
						checkRedisOutageUnavailable(t, who, i, r)
					}
					if g.degraded(t, client) == 0 {
						// The probe that found Redis was answered by it: an empty restarted
						// Redis allows; a resumed one may still hold the spent quota.
						if tt.outage == "killed" && r.status != 200 {
							t.Fatalf("%s recovered but its probing request got %d: %s", g.name, r.status, r.body)
						}
						if r.status == http.StatusServiceUnavailable {
							t.Fatalf("%s recovered but its probing request got 503", g.name)
						}
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s still degraded 10s after Redis came back (last answer %d)", g.name, r.status)
					}
					time.Sleep(20 * time.Millisecond)
				}
				if n := g.log.count(t, "rate limit backend recovered"); n != 1 {
					t.Fatalf("%s logged the recovery %d times, want once", g.name, n)
				}
			}
			errsAfter := map[string]float64{}
			for _, g := range gws {
				errsAfter[g.name] = g.backendErrors(t, client)
			}

			// 4. The shared limit again, with no further backend error.
			rs.flushAll(t)
			sharedLimitHolds(t, client, gws, "redis recovered")
			for _, g := range gws {
				if d, e := g.degraded(t, client), g.backendErrors(t, client); d != 0 || e != errsAfter[g.name] {
					t.Fatalf("%s after recovery: degraded %v, backend errors %v (was %v)", g.name, d, e, errsAfter[g.name])
				}
			}
			rs.flushAll(t)
			concurrentSharedLimitHolds(t, client, gws)
		})
	}
}
