package abuse

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"testing"

	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/testclock"
	"github.com/acme/shopgate/internal/testredis"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// switchProxy forwards TCP connections to a target while up; down closes its listener and every
// connection, up listens again on the same address. Every goroutine it starts ends by down.
type switchProxy struct {
	t      *testing.T
	addr   string
	target string

	mu    sync.Mutex
	ln    net.Listener
	conns []net.Conn
	wg    sync.WaitGroup
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &switchProxy{t: t, addr: ln.Addr().String(), target: target}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *switchProxy) serve(ln net.Listener) {
	p.ln = ln
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = c.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, c, u)
			p.mu.Unlock()
			p.wg.Add(2)
			go func() { defer p.wg.Done(); _, _ = io.Copy(u, c); _ = u.Close() }()
			go func() { defer p.wg.Done(); _, _ = io.Copy(c, u); _ = c.Close() }()
		}
	}()
}

func (p *switchProxy) down() {
	p.mu.Lock()
	if p.ln != nil {
		_ = p.ln.Close()
		p.ln = nil
	}
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.conns = nil
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *switchProxy) up() {
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("listening again on %s: %v", p.addr, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.serve(ln)
}

// TestRedisOutageAndRecovery: while Redis is away the replica counts and blocks alone; when it
// is back, the replica returns to Redis (logged once) and a block made during the outage still
// lasts its whole block_for.
func TestRedisOutageAndRecovery(t *testing.T) {
	t.Parallel()
	proxy := newSwitchProxy(t, testredis.Need(t))
	clock := testclock.New()
	cfg := Config{MaxFailures: 2, Backend: BackendRedis, Redis: RedisConfig{Config: redisclient.Config{Addr: proxy.addr}, KeyPrefix: testredis.Prefix(t, "abuse")}}
	f := newFixture(t, cfg, clock)
	s := serve(t, f.d)
	const a, b = "192.0.2.1", "192.0.2.2"
	if resp, _ := s.get(t, a, http.StatusOK); resp.StatusCode != http.StatusOK {
		t.Fatalf("Redis up: %d", resp.StatusCode)
	}

	proxy.down()
	for range 3 {
		s.get(t, a, http.StatusUnauthorized)
	}
	resp, body := s.get(t, a, http.StatusOK)
	checkBlocked(t, resp, body, "300")
	if f.logs.Count("abuse backend unreachable") != 1 || testutil.ToFloat64(f.d.metrics.degraded.WithLabelValues(BackendRedis)) != 1 {
		t.Fatal("the outage is not logged once, or not in the gauge")
	}

	proxy.up()
	clock.Advance(DefaultProbeInterval)
	s.get(t, b, http.StatusUnauthorized) // this one probes Redis, and is counted there
	if f.logs.Count("abuse backend recovered") != 1 || testutil.ToFloat64(f.d.metrics.degraded.WithLabelValues(BackendRedis)) != 0 {
		t.Fatalf("the recovery is not logged once, or not in the gauge:\n%s", f.logs.String())
	}
	resp, body = s.get(t, a, http.StatusOK)
	checkBlocked(t, resp, body, "299")
	got, _, err := f.d.store.(*shared).redis.Fail(context.Background(), netip.MustParseAddr(b), clock.Now(), f.d.Limits())
	if err != nil || got.Failures != 2 {
		t.Fatalf("b's failures in Redis: %+v, %v; want 2 (one from the replica, one here)", got, err)
	}
	clock.Advance(DefaultBlockFor)
	if resp, _ := s.get(t, a, http.StatusOK); resp.StatusCode != http.StatusOK {
		t.Fatalf("after block_for: %d, want 200", resp.StatusCode)
	}
}
