package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// The traffic policies of issue 4 (rate limit, circuit breaker and fallback, CORS, IP rules,
// timeouts), each through a real gateway (server.New) over real HTTP in front of real gRPC
// upstreams that record every call they receive.

const (
	serviceInventory = "shop.inventory.v1.InventoryService"
	serviceOrder     = "shop.order.v1.OrderService"
	typeRetryInfo    = "type.googleapis.com/google.rpc.RetryInfo"
)

// callsOf returns how many calls of method the upstream saw.
func (u *backend) callsOf(method string) int {
	u.mu.Lock()
	defer u.mu.Unlock()
	n := 0
	for _, c := range u.calls {
		if c.method == method {
			n++
		}
	}
	return n
}

// try is do without t: it is safe in goroutines other than the test's.
func try(client *http.Client, method, url, body string, header http.Header) (reply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return reply{}, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return reply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return reply{}, err
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}, nil
}

// statusOf decodes a google.rpc.Status body without t (see reply.rpcStatus).
func statusOf(r reply) (code int, details []map[string]any, err error) {
	var st struct {
		Code    int              `json:"code"`
		Message string           `json:"message"`
		Details []map[string]any `json:"details"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		return 0, nil, fmt.Errorf("body %q is not a google.rpc.Status: %v", r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		return 0, nil, fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	return st.Code, st.Details, nil
}

// newClient is an HTTP client of its own whose idle connections are closed at the end of the
// test (no goroutine left behind).
func newClient(t *testing.T) *http.Client {
	t.Helper()
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

// withHeader returns h with the pairs added (k1, v1, k2, v2, ...).
func withHeader(h http.Header, kv ...string) http.Header {
	if h == nil {
		h = http.Header{}
	}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// bodyFramings are the ways a stalled body is announced: a small Content-Length (which
// net/http would try to drain before answering), one at the body limit, and chunked.
var bodyFramings = []struct{ name, header string }{
	{"small Content-Length", "Content-Length: 1000"},
	{"large Content-Length", "Content-Length: 1048576"},
	{"chunked", "Transfer-Encoding: chunked"},
}

// stalledPost sends the headers of a POST to path and the first bytes of its body, then
// nothing more, and reads the answer: a refusal must come back while the body stalls, so the
// gateway never waited for (nor read) the body. It returns the response and how long it took.
func stalledPost(t *testing.T, gwURL, path, framing string, header http.Header) (*http.Response, time.Duration) {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(gwURL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	var b strings.Builder
	b.WriteString("POST " + path + " HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n")
	for k, vs := range header {
		for _, v := range vs {
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString(framing + "\r\n\r\n")
	if strings.HasPrefix(framing, "Transfer") {
		b.WriteString("9\r\n{\"items\":")
	} else {
		b.WriteString("{\"items\":")
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := conn.SetReadDeadline(start.Add(3 * time.Second)); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("no answer within 3s while the body stalls (%s): %v", framing, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp, time.Since(start)
}

var (
	rateLimitState = regexp.MustCompile(`^"default";r=(\d+);t=(\d+)$`)
)

// checkLimited checks a 429 of the rate limiter: a RESOURCE_EXHAUSTED Status with a RetryInfo
// whose delay is Retry-After, and the RateLimit headers.
func checkLimited(r reply, wantPolicy string) error {
	code, details, err := statusOf(r)
	if err != nil {
		return err
	}
	if codes.Code(code) != codes.ResourceExhausted {
		return fmt.Errorf("429 with code %d, want %d (RESOURCE_EXHAUSTED)", code, codes.ResourceExhausted)
	}
	ra := r.header.Get("Retry-After")
	secs, err := strconv.Atoi(ra)
	if err != nil || secs < 1 || secs > 60 {
		return fmt.Errorf("Retry-After %q, want whole seconds in [1, 60]", ra)
	}
	var delay any
	for _, d := range details {
		if d["@type"] == typeRetryInfo {
			delay = d["retryDelay"]
		}
	}
	if delay != ra+"s" {
		return fmt.Errorf("details %v: want a RetryInfo with retryDelay %q (Retry-After)", details, ra+"s")
	}
	if got := r.header.Get("RateLimit-Policy"); got != wantPolicy {
		return fmt.Errorf("429 RateLimit-Policy %q, want %q", got, wantPolicy)
	}
	if m := rateLimitState.FindStringSubmatch(r.header.Get("RateLimit")); m == nil || m[1] != "0" {
		return fmt.Errorf("429 RateLimit %q, want r=0", r.header.Get("RateLimit"))
	}
	return nil
}

// TestTrafficRateLimit: N parallel clients send 20 requests with one identity against a limit
// of 3 per minute, burst 3: exactly 3 pass and reach the upstream; the 17 others get a 429
// with a RetryInfo, Retry-After and the RateLimit headers, which the 200s carry too.
func TestTrafficRateLimit(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, `
client_ip: {trusted_proxies: ["127.0.0.0/8"]}
routes:
  shop.order.v1.OrderService/GetOrder: {rate_limit: {requests: 3, per: 60s, burst: 3}}
  shop.order.v1.OrderService/CreateOrder: {rate_limit: {requests: 3, per: 60s, burst: 3}}
  shop.inventory.v1.InventoryService/GetItem: {rate_limit: {requests: 3, per: 60s, burst: 3}}
`), Options{})
	gw.waitReady(t)
	client := newClient(t)
	const clients, total, limit = 8, 20, 3
	const wantPolicy = `"default";q=3;w=60`
	tests := []struct {
		name, method, path, rpc, body string
		header                        http.Header
	}{
		{"API key caller, GET", "GET", "/v1/orders/o-1", "GetOrder", "", customer()},
		{"API key caller, POST", "POST", "/v1/orders", "CreateOrder", `{"paymentMethod":"pm_card_ok"}`,
			withHeader(customer(), "Content-Type", "application/json")},
		{"anonymous caller, one client IP behind a trusted proxy", "GET", "/v1/inventory/items/sku-1", "GetItem", "",
			http.Header{"X-Forwarded-For": {"198.51.100.1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			jobs := make(chan int, total)
			for i := range total {
				jobs <- i
			}
			close(jobs)
			var mu sync.Mutex
			var replies []reply
			var errs []error
			var wg sync.WaitGroup
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range jobs {
						r, err := try(client, tt.method, gw.url+tt.path, tt.body, tt.header)
						mu.Lock()
						if err != nil {
							errs = append(errs, err)
						} else {
							replies = append(replies, r)
						}
						mu.Unlock()
					}
				}()
			}
			wg.Wait()
			if len(errs) > 0 {
				t.Fatalf("%d transport errors, first: %v", len(errs), errs[0])
			}
			counts := map[int]int{}
			var remaining []int
			for _, r := range replies {
				counts[r.status]++
				switch r.status {
				case http.StatusOK:
					if got := r.header.Get("RateLimit-Policy"); got != "" {
						t.Errorf("200 RateLimit-Policy %q, want none (429s only)", got)
					}
					m := rateLimitState.FindStringSubmatch(r.header.Get("RateLimit"))
					if m == nil {
						t.Errorf("200 RateLimit %q, want %s", r.header.Get("RateLimit"), rateLimitState)
						continue
					}
					n, _ := strconv.Atoi(m[1])
					remaining = append(remaining, n)
				case http.StatusTooManyRequests:
					if err := checkLimited(r, wantPolicy); err != nil {
						t.Error(err)
					}
				default:
					t.Errorf("status %d: %s", r.status, r.body)
				}
			}
			if counts[200] != limit || counts[429] != total-limit {
				t.Fatalf("statuses %v, want exactly %d x 200 and %d x 429", counts, limit, total-limit)
			}
			slices.Sort(remaining)
			if !slices.Equal(remaining, []int{0, 1, 2}) {
				t.Errorf("RateLimit remaining of the 200s = %v, want [0 1 2]", remaining)
			}
			if n := be.callsOf(tt.rpc); n != limit {
				t.Errorf("the upstream saw %d %s calls, want %d: refused requests must not reach it", n, tt.rpc, limit)
			}
		})
	}
}

// TestTrafficRateLimitPerCaller: each caller has its own quota per route: another API key,
// another client IP named by a trusted proxy, or another route is not limited by a caller who
// used up theirs; a client cannot escape its quota by sending X-Forwarded-For through no
// trusted proxy. Each case runs on a gateway of its own, so that no case spends another's quota.
func TestTrafficRateLimitPerCaller(t *testing.T) {
	be := startBackend(t)
	routes := `
routes:
  shop.order.v1.OrderService/GetOrder: {rate_limit: {requests: 1, per: 1h, burst: 1}}
  shop.inventory.v1.InventoryService/GetItem: {rate_limit: {requests: 1, per: 1h, burst: 1}}
`
	xff := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	tests := []struct {
		name          string
		trustProxy    bool
		first, second string // paths
		h1, h2        http.Header
		want          int // status of the second request
	}{
		{"the same API key", true, "/v1/orders/o-1", "/v1/orders/o-2", customer(), customer(), 429},
		{"another API key", true, "/v1/orders/o-1", "/v1/orders/o-1", customer(), http.Header{"X-Api-Key": {adminKey}}, 200},
		{"the same caller on another route", true, "/v1/inventory/items/a", "/v1/inventory/items", xff("198.51.100.1"), xff("198.51.100.1"), 200},
		{"the same client IP through a trusted proxy", true, "/v1/inventory/items/a", "/v1/inventory/items/b", xff("198.51.100.1"), xff("198.51.100.1"), 429},
		{"another client IP through a trusted proxy", true, "/v1/inventory/items/a", "/v1/inventory/items/a", xff("198.51.100.1"), xff("198.51.100.2"), 200},
		{"X-Forwarded-For through no trusted proxy is not another caller", false, "/v1/inventory/items/a", "/v1/inventory/items/a", xff("198.51.100.1"), xff("198.51.100.2"), 429},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := routes
			if tt.trustProxy {
				extra = "client_ip: {trusted_proxies: [\"127.0.0.0/8\"]}\n" + routes
			}
			gw := startGateway(t, baseYAML(be.addr, extra), Options{})
			gw.waitReady(t)
			if r := do(t, nil, "GET", gw.url+tt.first, nil, tt.h1); r.status != 200 {
				t.Fatalf("first caller: %d %s", r.status, r.body)
			}
			r := do(t, nil, "GET", gw.url+tt.second, nil, tt.h2)
			if r.status != tt.want {
				t.Fatalf("second caller: %d %s (RateLimit %q), want %d", r.status, r.body, r.header.Get("RateLimit"), tt.want)
			}
		})
	}
}

// TestTrafficRateLimitRefusedBeforeBody: a POST over its quota is refused with 429 while its
// body has not even arrived, so the body is neither read nor decoded, and nothing reaches the
// upstream.
func TestTrafficRateLimitRefusedBeforeBody(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, `
routes:
  shop.order.v1.OrderService/CreateOrder: {rate_limit: {requests: 1, per: 1h, burst: 1}}
`), Options{})
	gw.waitReady(t)
	h := withHeader(customer(), "Content-Type", "application/json")
	if r := do(t, nil, "POST", gw.url+"/v1/orders", jsonBody(`{}`), h); r.status != 200 {
		t.Fatalf("first POST: %d %s", r.status, r.body)
	}
	// The control: the auth stage's refusal of a stalled POST comes back at once.
	t.Run("control: 401 without a credential", func(t *testing.T) {
		for _, f := range bodyFramings {
			resp, took := stalledPost(t, gw.url, "/v1/orders", f.header, nil)
			if resp.StatusCode != http.StatusUnauthorized || took > 2*time.Second {
				t.Fatalf("%s: status %d after %v, want 401 at once", f.name, resp.StatusCode, took)
			}
		}
	})
	for _, f := range bodyFramings {
		t.Run(f.name, func(t *testing.T) {
			resp, took := stalledPost(t, gw.url, "/v1/orders", f.header, customer())
			if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") == "" {
				t.Fatalf("status %d Retry-After %q, want 429 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
			}
			if took > 2*time.Second {
				t.Errorf("the 429 took %v: the gateway waited for the body", took)
			}
			if n := be.callsOf("CreateOrder"); n != 1 {
				t.Errorf("the upstream saw %d CreateOrder calls, want 1", n)
			}
		})
	}
}

// stoppable is a backend whose gRPC server can be stopped and started again on its address.
type stoppable struct {
	*backend
	mu   sync.Mutex
	gs   *grpc.Server
	done chan struct{}
}

func startStoppable(t *testing.T) *stoppable {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stoppable{backend: &backend{addr: ln.Addr().String()}}
	s.serve(ln)
	t.Cleanup(s.stop)
	return s
}

func (s *stoppable) serve(ln net.Listener) {
	gs := grpc.NewServer()
	orderv1.RegisterOrderServiceServer(gs, s.backend)
	inventoryv1.RegisterInventoryServiceServer(gs, s.backend)
	paymentv1.RegisterPaymentServiceServer(gs, s.backend)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	s.mu.Lock()
	s.gs, s.done = gs, done
	s.mu.Unlock()
}

// stop stops the server (idempotent).
func (s *stoppable) stop() {
	s.mu.Lock()
	gs, done := s.gs, s.done
	s.gs = nil
	s.mu.Unlock()
	if gs != nil {
		gs.Stop()
		<-done
	}
}

// restart serves again on the same address.
func (s *stoppable) restart(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var err error
	for range 50 { // the port was just released; it is normally free at once
		if ln, err = net.Listen("tcp", s.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("listening again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// breakerYAML serves the inventory on inv and the two other services on other.
func breakerYAML(inv, other, extra string) string {
	return `
listen: 127.0.0.1:0
upstreams:
  shop.inventory.v1.InventoryService: {addresses: ["` + inv + `"]}
  shop.order.v1.OrderService: {addresses: ["` + other + `"]}
  shop.payment.v1.PaymentService: {addresses: ["` + other + `"]}
auth:
  api_keys:
    - {sha256: "` + sha(customerKey) + `", subject: alice, roles: [customer]}
routes:
  shop.inventory.v1.InventoryService/ListItems: {fallback: {http_status: 200, json_body: '{"items":[]}'}}
` + extra
}

// breakerState reads the state of a breaker from /readyz.
func (g *gateway) breakerState(t *testing.T, name string) string {
	t.Helper()
	r := do(t, nil, "GET", g.url+PathReadyz, nil, nil)
	var rd Readiness
	if err := json.Unmarshal(r.body, &rd); err != nil {
		t.Fatalf("/readyz %d %q: %v", r.status, r.body, err)
	}
	return rd.Breakers[name]
}

// breakerFaults are the two ways an upstream fails: it answers UNAVAILABLE, or it is gone.
var breakerFaults = []struct {
	name string
	fail func(t *testing.T, s *stoppable)
	heal func(t *testing.T, s *stoppable)
}{
	{"upstream answers UNAVAILABLE",
		func(t *testing.T, s *stoppable) {
			s.setBehave(func(context.Context, string) error { return status.Error(codes.Unavailable, "db down at 10.0.0.9") })
		},
		func(t *testing.T, s *stoppable) { s.setBehave(nil) }},
	{"upstream stopped",
		func(t *testing.T, s *stoppable) { s.stop() },
		func(t *testing.T, s *stoppable) { s.restart(t) }},
}

// TestTrafficBreaker: a failing upstream opens its service's breaker after the threshold
// (visible in /readyz and /metrics); while it is open the service's calls fail with 503 at once
// without reaching the upstream, a route with a fallback serves it with its marker header, and
// another service's routes are served as before.
func TestTrafficBreaker(t *testing.T) {
	for _, fault := range breakerFaults {
		t.Run(fault.name, func(t *testing.T) {
			inv := startStoppable(t)
			other := startBackend(t)
			gw := startGateway(t, breakerYAML(inv.addr, other.addr, "breaker: {scope: service, consecutive_failures: 3, open_timeout: 1h}\n"), Options{})
			gw.waitReady(t)
			if r := do(t, nil, "GET", gw.url+"/v1/inventory/items/sku-1", nil, nil); r.status != 200 {
				t.Fatalf("before the fault: %d %s", r.status, r.body)
			}
			if st := gw.breakerState(t, serviceInventory); st != "closed" {
				t.Fatalf("breaker before the fault: %q, want closed", st)
			}
			fault.fail(t, inv)
			for i := range 3 { // the threshold
				r := do(t, nil, "GET", gw.url+"/v1/inventory/items/sku-1", nil, nil)
				if r.status != http.StatusServiceUnavailable {
					t.Fatalf("failing call %d: %d %s, want 503", i, r.status, r.body)
				}
				if code, _, _ := r.rpcStatus(t); codes.Code(code) != codes.Unavailable || strings.Contains(string(r.body), "10.0.0.9") {
					t.Fatalf("failing call %d: %s, want a sanitized UNAVAILABLE", i, r.body)
				}
			}
			if st := gw.breakerState(t, serviceInventory); st != "open" {
				t.Fatalf("breaker after %d failures: %q, want open", 3, st)
			}
			if st := gw.breakerState(t, serviceOrder); st == "open" {
				t.Fatalf("the order service's breaker is %q", st)
			}
			m := do(t, nil, "GET", gw.url+PathMetrics, nil, nil)
			if !strings.Contains(string(m.body), `gateway_breaker_state{breaker="`+serviceInventory+`"} 2`) {
				t.Errorf("/metrics lacks the open breaker's state 2")
			}
			// From now on an inventory call that reached the upstream would hang until its
			// timeout: an answer at once proves it did not.
			inv.setBehave(func(ctx context.Context, _ string) error { <-ctx.Done(); return ctx.Err() })
			before := inv.count()
			otherBefore := other.callsOf("GetOrder")
			tests := []struct {
				name, path string
				header     http.Header
				status     int
				check      func(t *testing.T, r reply)
			}{
				{name: "open: 503 at once", path: "/v1/inventory/items/sku-1", status: 503, check: func(t *testing.T, r reply) {
					if code, _, _ := r.rpcStatus(t); codes.Code(code) != codes.Unavailable {
						t.Errorf("code %d, want UNAVAILABLE", code)
					}
				}},
				{name: "open with a fallback: the fallback", path: "/v1/inventory/items", status: 200, check: func(t *testing.T, r reply) {
					if r.header.Get(HeaderFallback) != "true" || strings.TrimSpace(string(r.body)) != `{"items":[]}` || r.header.Get("Content-Type") != "application/json" {
						t.Errorf("fallback: %s=%q Content-Type %q body %q", HeaderFallback, r.header.Get(HeaderFallback), r.header.Get("Content-Type"), r.body)
					}
				}},
				{name: "another service: served", path: "/v1/orders/o-1", header: customer(), status: 200, check: func(t *testing.T, r reply) {
					if r.header.Get(HeaderFallback) != "" {
						t.Errorf("a served answer carries %s", HeaderFallback)
					}
				}},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					var took []time.Duration
					for range 20 {
						start := time.Now()
						r := do(t, nil, "GET", gw.url+tt.path, nil, tt.header)
						took = append(took, time.Since(start))
						if r.status != tt.status {
							t.Fatalf("status %d %s, want %d", r.status, r.body, tt.status)
						}
						tt.check(t, r)
					}
					slices.Sort(took)
					t.Logf("latency over HTTP: median %v, max %v", took[len(took)/2], took[len(took)-1])
					if took[len(took)-1] > 2*time.Second || took[len(took)/2] > 50*time.Millisecond {
						t.Errorf("latency median %v max %v: not answered at once", took[len(took)/2], took[len(took)-1])
					}
				})
			}
			if n := inv.count() - before; n != 0 {
				t.Errorf("the inventory upstream saw %d calls while its breaker was open", n)
			}
			if n := other.callsOf("GetOrder") - otherBefore; n != 20 {
				t.Errorf("the order upstream saw %d GetOrder calls, want 20", n)
			}
			if st := gw.breakerState(t, serviceInventory); st != "open" {
				t.Errorf("breaker after the checks: %q, want still open", st)
			}
		})
	}
}

// TestTrafficBreakerRecovers: once the upstream is back, the breaker lets a probe through after
// its open timeout and closes.
func TestTrafficBreakerRecovers(t *testing.T) {
	for _, fault := range breakerFaults {
		t.Run(fault.name, func(t *testing.T) {
			inv := startStoppable(t)
			other := startBackend(t)
			gw := startGateway(t, breakerYAML(inv.addr, other.addr, "breaker: {scope: service, consecutive_failures: 2, open_timeout: 200ms}\n"), Options{})
			gw.waitReady(t)
			fault.fail(t, inv)
			for range 2 {
				if r := do(t, nil, "GET", gw.url+"/v1/inventory/items/sku-1", nil, nil); r.status != 503 {
					t.Fatalf("failing call: %d %s", r.status, r.body)
				}
			}
			if st := gw.breakerState(t, serviceInventory); st != "open" {
				t.Fatalf("breaker: %q, want open", st)
			}
			fault.heal(t, inv)
			poll(t, "the inventory to be served again", func() bool {
				return do(t, nil, "GET", gw.url+"/v1/inventory/items/sku-1", nil, nil).status == 200
			})
			if st := gw.breakerState(t, serviceInventory); st != "closed" {
				t.Errorf("breaker after recovery: %q, want closed", st)
			}
		})
	}
}

// TestTrafficCORS: preflights are answered at the edge (allowed ones with the
// Access-Control-Allow-* headers, refused ones with none, as gateway/cors defines: 204 either
// way) and never reach the upstream nor need a credential; actual requests from an allowed
// origin carry Access-Control-Allow-Origin, errors included.
func TestTrafficCORS(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, `
cors: {allowed_origins: ["https://shop.example"], max_age: 90s}
`), Options{})
	gw.waitReady(t)
	const origin = "https://shop.example"
	preflight := func(origin, method, headers string) http.Header {
		h := http.Header{"Origin": {origin}, "Access-Control-Request-Method": {method}}
		if headers != "" {
			h.Set("Access-Control-Request-Headers", headers)
		}
		return h
	}
	allowed := func(t *testing.T, r reply) {
		t.Helper()
		h := r.header
		if h.Get("Access-Control-Allow-Origin") != origin {
			t.Errorf("Access-Control-Allow-Origin %q, want %q", h.Get("Access-Control-Allow-Origin"), origin)
		}
		if m := h.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") || !strings.Contains(m, "GET") {
			t.Errorf("Access-Control-Allow-Methods %q", m)
		}
		if a := strings.ToLower(h.Get("Access-Control-Allow-Headers")); !strings.Contains(a, "content-type") || !strings.Contains(a, "x-api-key") {
			t.Errorf("Access-Control-Allow-Headers %q", h.Get("Access-Control-Allow-Headers"))
		}
		if h.Get("Access-Control-Max-Age") != "90" {
			t.Errorf("Access-Control-Max-Age %q, want 90", h.Get("Access-Control-Max-Age"))
		}
		if !strings.Contains(strings.Join(h.Values("Vary"), ","), "Origin") {
			t.Errorf("Vary %q lacks Origin", h.Values("Vary"))
		}
	}
	refused := func(t *testing.T, r reply) {
		t.Helper()
		for k := range r.header {
			if strings.HasPrefix(k, "Access-Control-") {
				t.Errorf("refused preflight carries %s: %q", k, r.header.Get(k))
			}
		}
	}
	tests := []struct {
		name, method, path string
		header             http.Header
		status             int
		reachesUpstream    bool
		check              func(t *testing.T, r reply)
	}{
		{"preflight, allowed origin", "OPTIONS", "/v1/orders", preflight(origin, "POST", "Content-Type, X-Api-Key, Idempotency-Key"), 204, false, allowed},
		{"preflight, allowed origin in another case", "OPTIONS", "/v1/orders", preflight("HTTPS://Shop.Example", "POST", "content-type"), 204, false, func(t *testing.T, r reply) {
			if r.header.Get("Access-Control-Allow-Origin") == "" {
				t.Error("origins compare case-insensitively: want Access-Control-Allow-Origin")
			}
		}},
		{"preflight on a route with a path parameter", "OPTIONS", "/v1/orders/o-1:cancel", preflight(origin, "POST", ""), 204, false, allowed},
		{"preflight, disallowed origin", "OPTIONS", "/v1/orders", preflight("https://evil.example", "POST", "Content-Type"), 204, false, refused},
		{"preflight, allowed origin, disallowed method", "OPTIONS", "/v1/orders", preflight(origin, "TRACE", ""), 204, false, refused},
		{"preflight, allowed origin, disallowed header", "OPTIONS", "/v1/orders", preflight(origin, "POST", "X-Evil"), 204, false, refused},
		{"simple request, allowed origin", "GET", "/v1/inventory/items/sku-1", http.Header{"Origin": {origin}}, 200, true, func(t *testing.T, r reply) {
			if r.header.Get("Access-Control-Allow-Origin") != origin {
				t.Errorf("Access-Control-Allow-Origin %q, want %q", r.header.Get("Access-Control-Allow-Origin"), origin)
			}
			if e := r.header.Get("Access-Control-Expose-Headers"); !strings.Contains(e, "X-Request-Id") || !strings.Contains(e, "RateLimit") {
				t.Errorf("Access-Control-Expose-Headers %q", e)
			}
		}},
		{"simple request, allowed origin, error answer", "GET", "/v1/orders/o-1", http.Header{"Origin": {origin}}, 401, false, func(t *testing.T, r reply) {
			if r.header.Get("Access-Control-Allow-Origin") != origin {
				t.Errorf("a 401 to an allowed origin lacks Access-Control-Allow-Origin: the script cannot read it")
			}
		}},
		{"simple request, disallowed origin: served, no CORS headers", "GET", "/v1/inventory/items/sku-1", http.Header{"Origin": {"https://evil.example"}}, 200, true, func(t *testing.T, r reply) {
			if v := r.header.Get("Access-Control-Allow-Origin"); v != "" {
				t.Errorf("Access-Control-Allow-Origin %q for a disallowed origin", v)
			}
		}},
		{"OPTIONS without Access-Control-Request-Method is no preflight", "OPTIONS", "/v1/orders", http.Header{"Origin": {origin}}, 405, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := be.count()
			r := do(t, nil, tt.method, gw.url+tt.path, nil, tt.header)
			if r.status != tt.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.status)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if n := be.count() - before; (n > 0) != tt.reachesUpstream {
				t.Errorf("the upstream saw %d calls, want reached=%v", n, tt.reachesUpstream)
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// TestTrafficIPRules: the global deny list and a route's allow and deny lists refuse with 403
// and a PERMISSION_DENIED Status before anything reaches the upstream; the client address comes
// from X-Forwarded-For only through a trusted proxy.
func TestTrafficIPRules(t *testing.T) {
	be := startBackend(t)
	rules := `
ip_rules: {deny: ["203.0.113.0/24"]}
routes:
  shop.inventory.v1.InventoryService/GetItem: {allow_cidrs: ["198.51.100.0/24"], deny_cidrs: ["198.51.100.66/32"]}
  shop.order.v1.OrderService/CreateOrder: {deny_cidrs: ["192.0.2.0/24"]}
`
	proxied := startGateway(t, baseYAML(be.addr, "client_ip: {trusted_proxies: [\"127.0.0.0/8\"]}\n"+rules), Options{})
	direct := startGateway(t, baseYAML(be.addr, rules), Options{})
	proxied.waitReady(t)
	direct.waitReady(t)
	xff := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
	post := func(h http.Header) http.Header {
		return withHeader(h, "X-Api-Key", customerKey, "Content-Type", "application/json")
	}
	tests := []struct {
		name, method, path string
		gw                 *gateway
		header             http.Header
		status             int
	}{
		{"global deny, public route", "GET", "/v1/inventory/items", proxied, xff("203.0.113.7"), 403},
		{"global deny, before routing", "GET", "/v1/nothing/here", proxied, xff("203.0.113.7"), 403},
		{"global deny, before auth", "GET", "/v1/orders/o-1", proxied, xff("203.0.113.7"), 403},
		{"global deny, the client is the first untrusted hop", "GET", "/v1/inventory/items", proxied, xff("203.0.113.7, 127.0.0.5"), 403},
		{"global deny spares other addresses", "GET", "/v1/inventory/items", proxied, xff("198.51.100.1"), 200},
		{"route allow list admits", "GET", "/v1/inventory/items/a", proxied, xff("198.51.100.9"), 200},
		{"route allow list refuses the rest", "GET", "/v1/inventory/items/a", proxied, xff("192.0.2.1"), 403},
		{"route allow list refuses the proxy's own address", "GET", "/v1/inventory/items/a", proxied, nil, 403},
		{"route deny wins over its allow list", "GET", "/v1/inventory/items/a", proxied, xff("198.51.100.66"), 403},
		{"route deny list refuses", "POST", "/v1/orders", proxied, post(xff("192.0.2.44")), 403},
		{"route deny list spares others", "POST", "/v1/orders", proxied, post(xff("198.51.100.1")), 200},
		{"no trusted proxy: X-Forwarded-For cannot join an allow list", "GET", "/v1/inventory/items/a", direct, xff("198.51.100.9"), 403},
		{"no trusted proxy: X-Forwarded-For cannot get a client denied", "GET", "/v1/inventory/items", direct, xff("203.0.113.7"), 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := be.count()
			var body io.Reader
			if tt.method == "POST" {
				body = jsonBody(`{}`)
			}
			r := do(t, nil, tt.method, tt.gw.url+tt.path, body, tt.header)
			if r.status != tt.status {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.status)
			}
			if tt.status != 403 {
				return
			}
			code, msg, _ := r.rpcStatus(t)
			if codes.Code(code) != codes.PermissionDenied {
				t.Errorf("code %d, want PERMISSION_DENIED", code)
			}
			if strings.Contains(msg, "203.0.113") || strings.Contains(msg, "198.51.100") || strings.Contains(msg, "192.0.2") {
				t.Errorf("message %q names an address", msg)
			}
			if n := be.count() - before; n != 0 {
				t.Errorf("the upstream saw %d calls of a refused request", n)
			}
		})
	}
	// A refused POST is refused before its body is read.
	for _, tt := range []struct {
		name string
		ip   string
	}{{"global deny", "203.0.113.7"}, {"route deny", "192.0.2.44"}} {
		for _, f := range bodyFramings {
			t.Run(tt.name+", stalled body, "+f.name, func(t *testing.T) {
				before := be.count()
				resp, took := stalledPost(t, proxied.url, "/v1/orders", f.header, post(xff(tt.ip)))
				if resp.StatusCode != http.StatusForbidden {
					t.Fatalf("status %d, want 403", resp.StatusCode)
				}
				if took > 2*time.Second {
					t.Errorf("the 403 took %v: the gateway waited for the body", took)
				}
				if n := be.count() - before; n != 0 {
					t.Errorf("the upstream saw %d calls", n)
				}
			})
		}
	}
}

// TestTrafficSlowUpstream: an upstream slower than the route timeout gets the deadline (it sees
// it and its handler is released), and the client gets a 504 DEADLINE_EXCEEDED at the
// deadline, not later; a client's shorter Grpc-Timeout wins.
func TestTrafficSlowUpstream(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, `
routes:
  shop.order.v1.OrderService/GetOrder: {timeout: 100ms}
  shop.order.v1.OrderService/CreateOrder: {timeout: 150ms}
`), Options{})
	gw.waitReady(t)
	tests := []struct {
		name, method, path, rpc string
		header                  http.Header
		timeout                 time.Duration // the deadline the upstream must see at most
	}{
		{"route timeout, GET", "GET", "/v1/orders/o-1", "GetOrder", customer(), 100 * time.Millisecond},
		{"route timeout, POST", "POST", "/v1/orders", "CreateOrder", withHeader(customer(), "Content-Type", "application/json"), 150 * time.Millisecond},
		{"a client's shorter Grpc-Timeout wins", "GET", "/v1/orders/o-1", "GetOrder", withHeader(customer(), "Grpc-Timeout", "40m"), 40 * time.Millisecond},
		{"a client's longer Grpc-Timeout does not", "GET", "/v1/orders/o-1", "GetOrder", withHeader(customer(), "Grpc-Timeout", "10S"), 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			released := make(chan error, 1)
			be.setBehave(func(ctx context.Context, _ string) error {
				select {
				case <-ctx.Done():
					released <- ctx.Err()
					return ctx.Err()
				case <-time.After(10 * time.Second):
					released <- errors.New("never released")
					return nil
				}
			})
			defer be.setBehave(nil)
			var body io.Reader
			if tt.method == "POST" {
				body = jsonBody(`{}`)
			}
			start := time.Now()
			r := do(t, nil, tt.method, gw.url+tt.path, body, tt.header)
			took := time.Since(start)
			if r.status != http.StatusGatewayTimeout {
				t.Fatalf("status %d %s, want 504", r.status, r.body)
			}
			if code, _, _ := r.rpcStatus(t); codes.Code(code) != codes.DeadlineExceeded {
				t.Errorf("code %d, want %d (DEADLINE_EXCEEDED)", code, codes.DeadlineExceeded)
			}
			if took < tt.timeout || took > 2*time.Second {
				t.Errorf("answered after %v, want at the %v deadline (within 2s)", took, tt.timeout)
			}
			c := be.last(t)
			if c.method != tt.rpc || c.deadline <= 0 || c.deadline > tt.timeout {
				t.Errorf("the upstream saw %s with deadline in %v, want %s with one in (0, %v]", c.method, c.deadline, tt.rpc, tt.timeout)
			}
			select {
			case err := <-released:
				if !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
					t.Errorf("the upstream handler ended with %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Error("the upstream handler was not released by the deadline")
			}
		})
	}
	be.setBehave(nil)
	if r := do(t, nil, "GET", gw.url+"/v1/orders/o-1", nil, customer()); r.status != 200 {
		t.Errorf("a fast call after the slow ones: %d %s", r.status, r.body)
	}
}
