package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"
)

// readiness asks /readyz and decodes its body.
func (g *gateway) readiness(t *testing.T, client *http.Client) (int, Readiness) {
	t.Helper()
	r := do(t, client, "GET", g.url+PathReadyz, nil, nil)
	var rd Readiness
	if err := json.Unmarshal(r.body, &rd); err != nil {
		t.Fatalf("/readyz body %q: %v", r.body, err)
	}
	return r.status, rd
}

// TestReadyzFollowsTheLimiter runs a gateway on a real redis-server of the test's own, which it
// kills (connections refused) or pauses (SIGSTOP: nothing answers) and brings back (item 12:
// "/readyz says ready when it cannot serve ... while a fail-closed limiter refuses every
// request"). Failing closed, /readyz answers 503 with "limiter": "unavailable" from the first
// probe after Redis went away, and 200 again once Redis is back, with no request to the
// routes needed to find it (a gateway out of rotation gets none). Failing open, /readyz stays
// 200 throughout: the in-memory limiter serves.
func TestReadyzFollowsTheLimiter(t *testing.T) {
	for _, tt := range []struct{ mode, outage string }{
		{"closed", "killed"},
		{"closed", "paused"},
		{"open", "killed"},
		{"open", "paused"},
	} {
		t.Run(tt.mode+"/"+tt.outage, func(t *testing.T) {
			rs := startRedisOutageServer(t)
			be := startBackend(t)
			client := &http.Client{Timeout: 5 * time.Second}
			gw := startGateway(t, baseYAML(be.addr, fmt.Sprintf(`
rate_limiting:
  backend: redis
  redis: {addr: %q, key_prefix: "readyz-%s:", failure_mode: %s, timeout: %v, probe_interval: %v}
`, rs.addr, tt.mode, tt.mode, redisOutageTimeout, redisOutageProbe)), Options{})
			t.Cleanup(client.CloseIdleConnections) // before the gateway's Shutdown
			gw.waitReady(t)
			check := func(phase string, wantStatus int, wantLimiter string) {
				t.Helper()
				code, rd := gw.readiness(t, client)
				if code != wantStatus || rd.Limiter != wantLimiter || rd.Ready != (wantStatus == http.StatusOK) {
					t.Fatalf("%s: /readyz %d %+v, want %d with limiter %q", phase, code, rd, wantStatus, wantLimiter)
				}
			}
			check("redis up", http.StatusOK, limiterOK)

			if tt.outage == "killed" {
				rs.kill()
			} else {
				rs.pause(t)
			}
			for i := range 3 { // the first probe trips the breaker; the next answer at once
				if tt.mode == "closed" {
					check(fmt.Sprintf("redis %s, probe %d", tt.outage, i), http.StatusServiceUnavailable, limiterUnavailable)
				} else {
					check(fmt.Sprintf("redis %s, probe %d", tt.outage, i), http.StatusOK, limiterOK)
				}
			}
			if tt.mode == "closed" {
				r := gw.getItem(t, client)
				if r.status != http.StatusServiceUnavailable {
					t.Fatalf("a limited request while not ready: %d, want 503", r.status)
				}
			}

			if tt.outage == "killed" {
				rs.start(t)
			} else {
				rs.resume(t)
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				code, rd := gw.readiness(t, client)
				if code == http.StatusOK && rd.Limiter == limiterOK && rd.Ready {
					break
				}
				if tt.mode == "open" {
					t.Fatalf("redis back, failing open: /readyz %d %+v, want 200", code, rd)
				}
				if code != http.StatusServiceUnavailable || rd.Limiter != limiterUnavailable {
					t.Fatalf("redis back: /readyz %d %+v, want 503 until the probe finds Redis", code, rd)
				}
				if time.Now().After(deadline) {
					t.Fatal("redis back: /readyz still 503 after 10s")
				}
				time.Sleep(redisOutageProbe / 3)
			}
			if r := gw.getItem(t, client); r.status != http.StatusOK {
				t.Fatalf("a limited request once ready: %d, want 200", r.status)
			}
		})
	}
}

// getItem requests a rate-limited route as the customer.
func (g *gateway) getItem(t *testing.T, client *http.Client) reply {
	t.Helper()
	return do(t, client, "GET", g.url+redisOutageItem, nil, customer())
}
