package sagatest

// A rolling update of two gateways behind a round-robin client that follows their /readyz,
// as kube-proxy follows a Service's ready endpoints.

import (
	"context"
	"fmt"
	"github.com/acme/shopgate/cmd/internal/proctest"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// serverEntries is the server section's entries after shutdown_timeout: ", " and extra, or
// nothing.
func serverEntries(extra string) string {
	if extra == "" {
		return ""
	}
	return ", " + extra
}

// endpoints is the tiny load balancer of the rolling test: the gateways whose /readyz answered
// 200 at their last poll (every 100ms), taken in turn.
type endpoints struct {
	bases []string
	ready []atomic.Bool
	next  atomic.Uint64
}

func newEndpoints(bases ...string) *endpoints {
	return &endpoints{bases: bases, ready: make([]atomic.Bool, len(bases))}
}

// poll keeps ready up to date until ctx ends.
func (e *endpoints) poll(ctx context.Context, wg *sync.WaitGroup) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 500 * time.Millisecond}
	for i, base := range e.bases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				ok := false
				if resp, err := client.Get(base + "/readyz"); err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					_ = resp.Body.Close()
					ok = resp.StatusCode == http.StatusOK
				}
				e.ready[i].Store(ok)
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
			}
		}()
	}
}

// pick returns the index of the next ready endpoint, or -1 when none is.
func (e *endpoints) pick() int {
	n := uint64(len(e.bases))
	start := e.next.Add(1)
	for k := range n {
		if i := (start + k) % n; e.ready[i].Load() {
			return int(i)
		}
	}
	return -1
}

// restart runs the gateway again on its port with its file (after a stop), and waits until its
// /readyz answers 200.
func (g *gateway) restart() {
	g.t.Helper()
	cmd, done, err := proctest.Start("gateway (restarted)", filepath.Join(g.p.bin, "gateway"), []string{"-config", g.cfgPath}, g.p.log)
	if err != nil {
		g.t.Fatal(err)
	}
	g.p.mu.Lock()
	g.p.cmd, g.p.done = cmd, done
	g.p.mu.Unlock()
	eventually(g.t, 30*time.Second, "the restarted gateway's /readyz to answer 200", func() bool {
		status, _ := g.readyz()
		return status == http.StatusOK
	})
}

// TestRollingRestartLosesNoRequest restarts each of two gateways in turn (SIGTERM, wait for the
// exit, start again on the same port) under a continuous load of reads and order creations
// sent through a round-robin client that follows their /readyz: every request is answered 200,
// none fails in transport, and both gateways serve after their restart.
func TestRollingRestartLosesNoRequest(t *testing.T) {
	const (
		sku     = "sku-rolling"
		workers = 4
	)
	began := time.Now()
	b := externalBroker(t)
	s := newStack(t, b, stackOptions{})
	s.putItem(sku, 1_000_000, 100)
	unlimited := "{rate_limit: {requests: 1000000, per: 60s, burst: 1000000}}"
	opts := gatewayOptions{
		server: "drain_delay: 1s",
		extra:  "routes: {shop.inventory.v1.InventoryService: " + unlimited + ", shop.order.v1.OrderService: " + unlimited + "}\n",
	}
	gws := []*gateway{startGateway(t, s, opts), startGateway(t, s, opts)}
	tokens := []string{gws[0].token("roller", "customer"), gws[1].token("roller", "customer")} // each gateway its own key
	// The services trust both gateways' passport keys (each startGateway put its own alone).
	trustGatewayPassports(t, s, filepath.Join(filepath.Dir(gws[0].cfgPath), "passport"), filepath.Join(filepath.Dir(gws[1].cfgPath), "passport"))

	lb := newEndpoints(gws[0].base, gws[1].base)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	lb.poll(ctx, &wg)
	eventually(t, 10*time.Second, "both gateways in the endpoint list", func() bool { return lb.ready[0].Load() && lb.ready[1].Load() })

	tr := &http.Transport{MaxIdleConnsPerHost: workers, ResponseHeaderTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr}
	var (
		served   [2]atomic.Int64
		failMu   sync.Mutex
		failures []string
		seq      atomic.Int64
	)
	send := func(i int) {
		n := seq.Add(1)
		var req *http.Request
		if n%4 == 0 { // an order: the saga's write path, retried by net/http only thanks to its Idempotency-Key
			req, _ = http.NewRequestWithContext(ctx, "POST", lb.bases[i]+"/v1/orders", strings.NewReader(`{"items":[{"sku":"`+sku+`","quantity":1}]}`))
			req.Header.Set("Authorization", "Bearer "+tokens[i])
			req.Header.Set("Idempotency-Key", fmt.Sprintf("rolling-%d", n))
		} else {
			req, _ = http.NewRequestWithContext(ctx, "GET", lb.bases[i]+"/v1/inventory/items/"+sku, nil)
		}
		resp, err := client.Do(req)
		if ctx.Err() != nil {
			return // the test is over
		}
		var fail string
		if err != nil {
			fail = fmt.Sprintf("gateway %d: %s %s: %v", i, req.Method, req.URL.Path, err)
		} else {
			body, rerr := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || rerr != nil {
				fail = fmt.Sprintf("gateway %d: %s %s: %d %s (%v)", i, req.Method, req.URL.Path, resp.StatusCode, body, rerr)
			}
		}
		if fail != "" {
			failMu.Lock()
			failures = append(failures, fail)
			failMu.Unlock()
			return
		}
		served[i].Add(1)
	}
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				if i := lb.pick(); i >= 0 {
					send(i)
				} else {
					time.Sleep(10 * time.Millisecond) // never while the test keeps one gateway up
				}
			}
		}()
	}

	eventually(t, 10*time.Second, "both gateways to serve the load", func() bool { return served[0].Load() > 20 && served[1].Load() > 20 })
	t.Logf("stack, gateways and load up in %s", time.Since(began).Round(time.Millisecond))
	for i, g := range gws {
		g.p.mu.Lock()
		cmd := g.p.cmd
		g.p.mu.Unlock()
		start := time.Now()
		g.p.stop() // SIGTERM, and wait for the exit
		if !cmd.ProcessState.Success() {
			t.Errorf("gateway %d exited with %v", i, cmd.ProcessState)
		}
		if took := time.Since(start); took < time.Second {
			t.Errorf("gateway %d exited %s after SIGTERM, before its 1s drain delay", i, took)
		}
		g.restart()
		before := served[i].Load()
		eventually(t, 10*time.Second, fmt.Sprintf("gateway %d back in the endpoint list and serving", i), func() bool {
			return served[i].Load() > before+20
		})
		t.Logf("gateway %d stopped, restarted and serving again in %s", i, time.Since(start).Round(time.Millisecond))
	}
	cancel()
	wg.Wait()

	failMu.Lock()
	defer failMu.Unlock()
	if len(failures) > 0 {
		t.Errorf("%d of %d requests failed; the first ones:\n%s", len(failures), seq.Load(), strings.Join(failures[:min(len(failures), 10)], "\n"))
	}
	for i, g := range gws {
		logs := g.p.logs()
		for _, msg := range []string{"gateway draining", "gateway shutting down", "gateway stopped"} {
			if !strings.Contains(logs, `"msg":"`+msg) {
				t.Errorf("gateway %d's log has no %q line", i, msg)
			}
		}
	}
	t.Logf("%d requests, gateway 0 served %d, gateway 1 served %d, %d failed", seq.Load(), served[0].Load(), served[1].Load(), len(failures))
}
