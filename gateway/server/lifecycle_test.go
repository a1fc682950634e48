package server

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/passport"
	"github.com/acme/shopgate/gateway/pipeline"
	"github.com/acme/shopgate/gateway/policy"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/internal/shopapi"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// poll waits for cond with a deadline instead of a fixed sleep.
// pollRefused polls until url refuses new connections, and returns the client it polled
// with (no keep-alive: each request a new connection).
func pollRefused(t *testing.T, what, url string) *http.Client {
	t.Helper()
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	poll(t, what, func() bool {
		resp, err := fresh.Get(url + PathHealthz)
		if err == nil {
			_ = resp.Body.Close()
			return false
		}
		return true
	})
	return fresh
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestStackOrder checks that what a real request passes is the declared pipeline (declare in
// pipeline.go, printed by ExampleServer_Pipeline): every stage in the table's order, the HTTP ones
// and the gRPC client ones alike. A unary call passes every stage but the stream-only
// early-refusal; a :watch passes that one too. The Transport stage (retry) is grpc-go's own,
// below the interceptors: it has no hook, and contract_test's retry test covers it.
func TestStackOrder(t *testing.T) {
	be := startBackend(t)
	be.watch = func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
		return stream.Send(&orderv1.Order{Id: "o-1"})
	}
	var mu sync.Mutex
	var got []string
	gw := startGateway(t, baseYAML(be.addr, ""), Options{trace: func(name string) {
		mu.Lock()
		got = append(got, name)
		mu.Unlock()
	}})
	gw.waitReady(t)
	declared := gw.Pipeline()
	want := func(stream bool) []string {
		var out []string
		for _, st := range declared.Stages() {
			switch {
			case st.Layer == pipeline.Transport:
			case st.Layer == pipeline.Client && (stream && st.Stream == nil || !stream && st.Unary == nil):
			default:
				out = append(out, st.Name)
			}
		}
		return out
	}
	for _, tt := range []struct {
		name, path string
		stream     bool
	}{
		{"unary", "/v1/orders/o-1", false},
		{"stream", "/v1/orders/o-1:watch", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil // readiness probes do not pass the pipeline, but start clean anyway
			mu.Unlock()
			if r := do(t, nil, "GET", gw.url+tt.path, nil, customer()); r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			mu.Lock()
			defer mu.Unlock()
			if w := want(tt.stream); !slices.Equal(got, w) {
				t.Errorf("stages = %v\nwant     %v", got, w)
			}
		})
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(s.b.String()), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestEveryGeneratedRouteResolves sends one request per binding of the route table through the
// real mux and checks, in the access log, that the binding resolved to its own table entry.
func TestEveryGeneratedRouteResolves(t *testing.T) {
	be := startBackend(t)
	be.watch = func(grpc.ServerStreamingServer[orderv1.Order]) error { return nil }
	logs := &syncBuffer{}
	gw := startGateway(t, baseYAML(be.addr, ""), Options{Logger: slog.New(slog.NewJSONHandler(logs, nil))})
	gw.waitReady(t)
	vars := regexp.MustCompile(`\{[^}]*\}`)
	rs := gw.cur.Load().table.Routes()
	if want := len(shopapi.Bindings()); len(rs) != want {
		t.Fatalf("route table has %d routes, want every google.api.http binding of the services: %d", len(rs), want)
	}
	for _, rt := range rs {
		t.Run(rt.HTTPMethod+" "+rt.Path, func(t *testing.T) {
			path := vars.ReplaceAllString(rt.Path, "x1")
			h := http.Header{"X-Api-Key": {adminKey}, "X-Request-Id": {"resolve-" + strings.NewReplacer("/", "-", "{", "", "}", "", ":", "-", ".", "-").Replace(rt.HTTPMethod+rt.Path)}}
			var body *strings.Reader
			if rt.HTTPMethod != http.MethodGet {
				body = strings.NewReader("{}")
				h.Set("Content-Type", "application/json")
			}
			var r reply
			if body != nil {
				r = do(t, nil, rt.HTTPMethod, gw.url+path, body, h)
			} else {
				r = do(t, nil, rt.HTTPMethod, gw.url+path, nil, h)
			}
			if r.status == http.StatusNotFound || r.status == http.StatusMethodNotAllowed {
				t.Fatalf("%s %s: %d %s", rt.HTTPMethod, path, r.status, r.body)
			}
			id := h.Get("X-Request-Id")
			var rpc any
			poll(t, "the access log line", func() bool {
				for _, l := range logs.lines() {
					if l["request_id"] == id {
						rpc = l["rpc"]
						return true
					}
				}
				return false
			})
			if rpc != rt.RPC {
				t.Errorf("%s %s resolved to %v, want %s", rt.HTTPMethod, path, rpc, rt.RPC)
			}
		})
	}
}

// TestStreaming checks a server-streaming RPC through the whole stack: newline-delimited JSON,
// each message flushed as it comes, and an error after the first message as a final sanitized
// {"error": ...} line.
func TestStreaming(t *testing.T) {
	be := startBackend(t)
	next := make(chan struct{})
	be.watch = func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
		for i, st := range []orderv1.OrderStatus{orderv1.OrderStatus_ORDER_STATUS_PENDING, orderv1.OrderStatus_ORDER_STATUS_CONFIRMED} {
			if err := stream.Send(&orderv1.Order{Id: "o-1", Status: st}); err != nil {
				return err
			}
			if i == 0 {
				select { // the client must see the first message before the second exists
				case <-next:
				case <-stream.Context().Done():
					return stream.Context().Err()
				}
			}
		}
		return status.Error(codes.Internal, "lost the db at 10.1.1.1")
	}
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	gw.waitReady(t)
	req, _ := http.NewRequest("GET", gw.url+"/v1/orders/o-1:watch", nil)
	req.Header = customer()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(resp.Body)
	type line struct {
		Result *struct{ ID, Status string } `json:"result"`
		Error  *struct {
			Code    int
			Message string
		} `json:"error"`
	}
	read := func() line {
		t.Helper()
		if !sc.Scan() {
			t.Fatalf("stream ended early: %v", sc.Err())
		}
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		return l
	}
	if l := read(); l.Result == nil || l.Result.Status != "ORDER_STATUS_PENDING" {
		t.Fatalf("first line = %+v", l)
	}
	close(next)
	if l := read(); l.Result == nil || l.Result.Status != "ORDER_STATUS_CONFIRMED" {
		t.Fatalf("second line = %+v", l)
	}
	l := read()
	if l.Error == nil || codes.Code(l.Error.Code) != codes.Internal || strings.Contains(l.Error.Message, "10.1.1.1") {
		t.Fatalf("final line = %+v, want a sanitized INTERNAL error", l.Error)
	}
}

// TestGracefulShutdown checks that Shutdown lets an in-flight request finish while new
// connections are refused.
func TestGracefulShutdown(t *testing.T) {
	be := startBackend(t)
	release := make(chan struct{})
	be.setBehave(func(ctx context.Context, _ string) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	gw.waitReady(t)

	inflight := make(chan reply, 1)
	go func() { inflight <- do(t, nil, "GET", gw.url+"/v1/orders/o-1", nil, customer()) }()
	poll(t, "the request to reach the upstream", func() bool { return be.count() == 1 })

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- gw.Shutdown(ctx)
	}()
	pollRefused(t, "new connections to be refused", gw.url)
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	if r := <-inflight; r.status != 200 {
		t.Errorf("in-flight request: %d %s", r.status, r.body)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}

// TestReload checks that a valid reload swaps the policy at once, an invalid one changes
// nothing, non-reloadable changes are refused, and a request in flight finishes on the
// snapshot it started with, which is closed after it.
func TestReload(t *testing.T) {
	be := startBackend(t)
	yaml := baseYAML(be.addr, "")
	gw := startGateway(t, yaml, Options{})
	gw.waitReady(t)
	item := gw.url + "/v1/inventory/items/sku-1"
	if r := do(t, nil, "GET", item, nil, nil); r.status != 200 {
		t.Fatalf("before reload: %d %s", r.status, r.body)
	}

	// A request in flight on the first snapshot.
	release := make(chan struct{})
	be.setBehave(func(ctx context.Context, m string) error {
		if m == "GetOrder" {
			<-release
		}
		return nil
	})
	old := gw.cur.Load()
	inflight := make(chan reply, 1)
	go func() { inflight <- do(t, nil, "GET", gw.url+"/v1/orders/o-1", nil, customer()) }()
	poll(t, "the request to reach the upstream", func() bool { return be.count() == 2 })

	if err := gw.Reload(parse(t, baseYAML(be.addr, "routes: {shop.inventory.v1.InventoryService/GetItem: {auth: required}}"))); err != nil {
		t.Fatalf("valid reload: %v", err)
	}
	if r := do(t, nil, "GET", item, nil, nil); r.status != 401 {
		t.Errorf("after reload the public route answers %d, want 401", r.status)
	}
	if old.refs.Load() <= 0 {
		t.Error("the old snapshot was closed with a request in flight")
	}
	close(release)
	if r := <-inflight; r.status != 200 {
		t.Errorf("in-flight request: %d %s", r.status, r.body)
	}
	poll(t, "the old snapshot to drain and close", func() bool { return old.refs.Load() == 0 })

	refused := []struct {
		name, yaml, want string
	}{
		{"unknown RPC", baseYAML(be.addr, "routes: {shop.order.v1.OrderService/Nope: {timeout: 1s}}"), "shop.order.v1.OrderService/Nope"},
		{"listen changed", strings.Replace(yaml, "listen: 127.0.0.1:0", "listen: 127.0.0.1:1", 1), "listen"},
		{"upstreams changed", baseYAML(deadAddr(t), ""), "upstreams"},
		{"server settings changed", baseYAML(be.addr, "server: {idle_timeout: 1s}"), "server"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			cur := gw.cur.Load()
			err := gw.Reload(parse(t, tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Reload error = %v, want one naming %q", err, tt.want)
			}
			if gw.cur.Load() != cur {
				t.Error("a refused reload replaced the snapshot")
			}
			if r := do(t, nil, "GET", item, nil, nil); r.status != 401 {
				t.Errorf("after a refused reload the route answers %d, want 401 (old config)", r.status)
			}
		})
	}

	// An API key removed from the configuration by Reload is refused from then on, before the
	// upstream is called; the key that stays keeps working.
	t.Run("api key revoked", func(t *testing.T) {
		admin := http.Header{"X-Api-Key": {adminKey}}
		order := gw.url + "/v1/orders/o-1"
		if r := do(t, nil, "GET", order, nil, admin); r.status != 200 {
			t.Fatalf("the admin key before its removal: %d %s", r.status, r.body)
		}
		full := baseYAML(be.addr, "")
		revoked := strings.Replace(full, `    - {sha256: "`+sha(adminKey)+`", subject: root, roles: [admin]}`+"\n", "", 1)
		if revoked == full {
			t.Fatal("the admin key's line is not in baseYAML: update this test")
		}
		if err := gw.Reload(parse(t, revoked)); err != nil {
			t.Fatalf("reload without the admin key: %v", err)
		}
		calls := be.count()
		r := do(t, nil, "GET", order, nil, admin)
		if r.status != 401 {
			t.Fatalf("the removed admin key: %d %s, want 401", r.status, r.body)
		}
		if code, _, _ := r.rpcStatus(t); code != 16 {
			t.Errorf("the removed admin key: code %d, want 16 (UNAUTHENTICATED)", code)
		}
		if ch := r.header.Get("WWW-Authenticate"); !strings.HasPrefix(ch, "Bearer ") || !strings.Contains(ch, `error="invalid_token"`) {
			t.Errorf("the removed admin key: WWW-Authenticate %q", ch)
		}
		if n := be.count(); n != calls {
			t.Errorf("the removed admin key reached the upstream (%d calls, was %d)", n, calls)
		}
		if r := do(t, nil, "GET", order, nil, customer()); r.status != 200 {
			t.Errorf("the customer key, still configured: %d %s", r.status, r.body)
		}
	})
}

// TestReadiness checks /healthz and /readyz with upstreams up and down.
func TestReadiness(t *testing.T) {
	be := startBackend(t)
	up := startGateway(t, baseYAML(be.addr, ""), Options{})
	up.waitReady(t)
	down := startGateway(t, baseYAML(deadAddr(t), ""), Options{})
	tests := []struct {
		name   string
		gw     *gateway
		status int
		ready  bool
	}{
		{"upstreams up", up, 200, true},
		{"upstreams down", down, 503, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := do(t, nil, "GET", tt.gw.url+PathHealthz, nil, nil); r.status != 200 || r.header.Get("X-Request-Id") == "" {
				t.Errorf("/healthz = %d, X-Request-Id %q", r.status, r.header.Get("X-Request-Id"))
			}
			r := do(t, nil, "GET", tt.gw.url+PathReadyz, nil, nil)
			if r.status != tt.status {
				t.Fatalf("/readyz = %d %s", r.status, r.body)
			}
			var rd Readiness
			if err := json.Unmarshal(r.body, &rd); err != nil {
				t.Fatal(err)
			}
			if rd.Ready != tt.ready || len(rd.Upstreams) != len(shopapi.Names()) || rd.Breakers == nil { // baseYAML: every service
				t.Errorf("readiness = %+v", rd)
			}
			for name, st := range rd.Upstreams {
				if (st == "READY") != tt.ready {
					t.Errorf("upstream %s is %s", name, st)
				}
			}
		})
	}
	do(t, nil, "GET", up.url+"/v1/inventory/items/sku-1", nil, nil)
	r := do(t, nil, "GET", up.url+PathMetrics, nil, nil)
	if r.status != 200 || !strings.Contains(string(r.body), `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/v1/inventory/items/{sku}"} 1`) {
		t.Errorf("/metrics = %d, lacks the GET's request count", r.status)
	}
}

// TestNewErrors checks start-up refusals.
func TestNewErrors(t *testing.T) {
	tests := []struct{ name, yaml, want string }{
		{"unknown upstream service", "upstreams: {shop.nope.v1.Nope: {addresses: [\"127.0.0.1:1\"]}}", "shop.nope.v1.Nope"},
		{"unknown RPC override", "routes: {shop.order.v1.OrderService/Create: {timeout: 1s}}", "shop.order.v1.OrderService/Create"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(parse(t, tt.yaml), Options{Services: shopapi.Services()})
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New error = %v, want one naming %q", err, tt.want)
			}
		})
	}
	if _, err := New(nil, Options{}); err == nil {
		t.Fatal("New(nil) succeeded")
	}
}

// TestExampleConfigBuilds builds a whole gateway from gateway/config/example.yaml, so that every
// section of the example (the policy stages' too) passes its constructor's validation.
func TestExampleConfigBuilds(t *testing.T) {
	cfg, err := config.Load("../config/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Passport.KeyDir = t.TempDir() // the example's folder is relative to the repository's root
	if err := passport.EnsureKey(cfg.Passport.KeyDir); err != nil {
		t.Fatal(err)
	}
	jwks, err := passport.JWKSOf(cfg.Passport.KeyDir) // any Ed25519 JWKS with a kid will do
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range cfg.Auth.Sources { // so are its JWKS files (the development key's)
		if s.JWKSFile != "" {
			cfg.Auth.Sources[i].JWKSFile = filepath.Join(t.TempDir(), "jwks.json")
			if err := os.WriteFile(cfg.Auth.Sources[i].JWKSFile, jwks, 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	srv, err := New(cfg, Options{Logger: discardLogger(), Services: shopapi.Services()})
	if err != nil {
		t.Fatalf("server.New(example.yaml): %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
}

// TestStreamOutlivesWriteTimeout checks that a server write_timeout meant for unary answers does
// not cut a :watch stream, which is bounded by its route timeout instead.
func TestStreamOutlivesWriteTimeout(t *testing.T) {
	be := startBackend(t)
	be.watch = func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
		if err := stream.Send(&orderv1.Order{Id: "o-1"}); err != nil {
			return err
		}
		select { // past the server's write timeout: a real wait is what this test is about
		case <-time.After(400 * time.Millisecond):
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
		return stream.Send(&orderv1.Order{Id: "o-1", Status: orderv1.OrderStatus_ORDER_STATUS_CONFIRMED})
	}
	gw := startGateway(t, baseYAML(be.addr, "server: {write_timeout: 200ms}"), Options{})
	gw.waitReady(t)
	r := do(t, nil, "GET", gw.url+"/v1/orders/o-1:watch", nil, customer())
	if lines := strings.Count(strings.TrimSpace(string(r.body)), "\n") + 1; r.status != 200 || lines != 2 || !strings.Contains(string(r.body), "CONFIRMED") {
		t.Fatalf("status %d, %d lines: %s", r.status, lines, r.body)
	}
}

// TestMissingRouteGetsSafeDefault serves a binding the route table does not know: it gets the
// table's safe default (auth required, default timeout), never an open policy.
func TestMissingRouteGetsSafeDefault(t *testing.T) {
	srv, err := New(parse(t, baseYAML("127.0.0.1:1", "defaults: {timeout: 3s}")), Options{Logger: discardLogger(), Services: shopapi.Services()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	snap := srv.cur.Load()
	var got *policy.Route
	mux := runtime.NewServeMux(runtime.WithMiddlewares(srv.routeStage(snap)))
	if err := mux.HandlePath("GET", "/v1/unlisted/{id}", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
		got = policy.FromContext(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}); err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(edge.RequestID(mux))
	defer hs.Close()
	tests := []struct {
		name   string
		header http.Header
		status int
	}{
		{"no credential: refused by the default auth", nil, http.StatusUnauthorized},
		{"with a credential: served under the default policy", customer(), http.StatusNoContent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			r := do(t, hs.Client(), "GET", hs.URL+"/v1/unlisted/1", nil, tt.header)
			if r.status != tt.status {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if tt.status == http.StatusNoContent && (got == nil || got.Policy.Auth != policy.AuthRequired || got.Policy.Timeout != 3*time.Second || got.RPC != "") {
				t.Errorf("policy = %+v, want the safe default", got)
			}
		})
	}
}
