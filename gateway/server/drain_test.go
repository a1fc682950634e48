package server

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/internal/shopapi"
	"google.golang.org/grpc"
)

// TestDrain checks the first phase of a graceful shutdown: /readyz fails with "draining" while
// every other request is still served, each answer closing its connection.
func TestDrain(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	gw.waitReady(t)
	gw.Drain()
	if !gw.Draining() {
		t.Fatal("Draining() = false after Drain")
	}
	tests := []struct {
		path         string
		header       http.Header
		wantStatus   int
		wantInBody   string
		wantNotReady bool
	}{
		{path: PathReadyz, wantStatus: 503, wantInBody: `"draining":true`, wantNotReady: true},
		{path: PathHealthz, wantStatus: 200, wantInBody: `"ok"`},
		{path: "/v1/orders/o-1", header: customer(), wantStatus: 200, wantInBody: `"o-1"`},
		{path: PathMetrics, wantStatus: 200, wantInBody: "http_server_request_duration_seconds"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			req, _ := http.NewRequest("GET", gw.url+tt.path, nil)
			req.Header = tt.header
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(body), tt.wantInBody) {
				t.Errorf("%d %s, want %d with %s", resp.StatusCode, body, tt.wantStatus, tt.wantInBody)
			}
			if !resp.Close { // the client read Connection: close
				t.Error("the answer keeps its connection while draining")
			}
			if tt.wantNotReady {
				var rd Readiness
				if err := json.Unmarshal(body, &rd); err != nil || rd.Ready || !rd.Draining {
					t.Errorf("readiness %+v (%v): want not ready, draining", rd, err)
				}
			}
		})
	}
}

// TestNotDrainingKeepsConnections checks that Connection: close is the drain's only: a normal
// answer keeps its connection, and /readyz says nothing of draining.
func TestNotDrainingKeepsConnections(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	gw.waitReady(t)
	for _, path := range []string{PathReadyz, "/v1/orders/o-1"} {
		req, _ := http.NewRequest("GET", gw.url+path, nil)
		req.Header = customer()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.Close {
			t.Errorf("%s: the answer closes its connection", path)
		}
		r := do(t, nil, "GET", gw.url+path, nil, customer())
		if r.status != 200 || strings.Contains(string(r.body), "draining") {
			t.Errorf("%s: %d %v %s", path, r.status, r.header, r.body)
		}
	}
}

// TestShutdownEndsStreams checks that Shutdown ends the open :watch streams at once with a last
// UNAVAILABLE chunk or event (a complete response, not a cut connection), in both framings, and
// a stream whose upstream sent nothing yet with a 503, instead of waiting for their timeout.
func TestShutdownEndsStreams(t *testing.T) {
	tests := []struct {
		name       string
		accept     string
		first      bool // the upstream sends a first message before blocking
		wantStatus int
		wantInBody []string
	}{
		{name: "ndjson", first: true, wantStatus: 200, wantInBody: []string{`{"result":`, `"error":{"code":14,"message":"` + msgDraining}},
		{name: "sse", accept: "text/event-stream", first: true, wantStatus: 200, wantInBody: []string{"event: error", `"code":14`, msgDraining}},
		{name: "before first message", wantStatus: 503, wantInBody: []string{`"code":14`, msgDraining}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := startBackend(t)
			be.watch = func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
				if tt.first {
					if err := stream.Send(&orderv1.Order{Id: "o-1", Status: orderv1.OrderStatus_ORDER_STATUS_PENDING}); err != nil {
						return err
					}
				}
				<-stream.Context().Done() // an order that never settles
				return stream.Context().Err()
			}
			gw := startGateway(t, baseYAML(be.addr, `routes: {shop.order.v1.OrderService/WatchOrder: {timeout: 300s}}`), Options{})
			gw.waitReady(t)
			req, _ := http.NewRequest("GET", gw.url+"/v1/orders/o-1:watch", nil)
			req.Header = customer()
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			type result struct {
				resp *http.Response
				body []byte
				err  error
			}
			got := make(chan result, 1)
			go func() {
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					got <- result{err: err}
					return
				}
				defer resp.Body.Close()
				body, err := io.ReadAll(resp.Body) // to the end of the response: an error if cut
				got <- result{resp: resp, body: body, err: err}
			}()
			poll(t, "the stream to reach the upstream", func() bool { return be.count() == 1 })
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			start := time.Now()
			if err := gw.Shutdown(ctx); err != nil {
				t.Fatalf("Shutdown: %v", err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("Shutdown took %s with a stream open", took)
			}
			r := <-got
			if r.err != nil {
				t.Fatalf("stream: %v", r.err)
			}
			if r.resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d (%s)", r.resp.StatusCode, tt.wantStatus, r.body)
			}
			for _, want := range tt.wantInBody {
				if !strings.Contains(string(r.body), want) {
					t.Errorf("body %q lacks %q", r.body, want)
				}
			}
		})
	}
}

// startAdminGateway serves yaml (with server.admin_listen) on a public and an admin listener.
func startAdminGateway(t *testing.T, yaml string) (gw *gateway, adminURL string) {
	t.Helper()
	srv, err := New(parse(t, yaml), Options{Logger: discardLogger(), Services: shopapi.Services()})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adm, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{}, 2)
	go func() { _ = srv.Serve(pub); done <- struct{}{} }()
	go func() { _ = srv.ServeAdmin(adm); done <- struct{}{} }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
		<-done
	})
	return &gateway{Server: srv, url: "http://" + pub.Addr().String()}, "http://" + adm.Addr().String()
}

// TestAdminListen checks the split of server.admin_listen: /metrics, /readyz and /admin/* on
// the admin listener only (404 on the public one, like any unknown path), /healthz on both, the
// API on the public one only.
func TestAdminListen(t *testing.T) {
	be := startBackend(t)
	gw, admin := startAdminGateway(t, baseYAML(be.addr, "server: {admin_listen: '127.0.0.1:0'}"))
	admKey := http.Header{"X-Api-Key": {adminKey}}
	tests := []struct {
		name       string
		base       string
		path       string
		method     string
		header     http.Header
		wantStatus int
		wantInBody string
	}{
		{"public metrics", gw.url, PathMetrics, "GET", nil, 404, `"code":5`},
		{"public readyz", gw.url, PathReadyz, "GET", nil, 404, `"code":5`},
		{"public admin routes", gw.url, PathRoutes, "GET", admKey, 404, `"code":5`},
		{"public abuse blocks", gw.url, PathAbuseBlocks, "GET", admKey, 404, `"code":5`},
		{"public healthz", gw.url, PathHealthz, "GET", nil, 200, `"ok"`},
		{"public API", gw.url, "/v1/orders/o-1", "GET", customer(), 200, `"o-1"`},
		{"admin metrics", admin, PathMetrics, "GET", nil, 200, "gateway_"},
		{"admin readyz", admin, PathReadyz, "GET", nil, 200, `"ready":true`},
		{"admin healthz", admin, PathHealthz, "GET", nil, 200, `"ok"`},
		{"admin routes", admin, PathRoutes, "GET", admKey, 200, "/v1/orders"},
		{"admin routes need an admin", admin, PathRoutes, "GET", customer(), 403, `"code":7`},
		{"admin routes need a credential", admin, PathRoutes, "GET", nil, 401, `"code":16`},
		{"admin abuse blocks", admin, PathAbuseBlocks, "GET", admKey, 200, "{"},
		{"admin unknown admin path", admin, "/admin/nothing", "GET", admKey, 404, `"code":5`},
		{"admin has no API", admin, "/v1/orders/o-1", "GET", customer(), 404, `"code":5`},
		{"admin readyz POST", admin, PathReadyz, "POST", nil, 405, ""},
	}
	gw.waitReadyAt(t, admin)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, nil, tt.method, tt.base+tt.path, nil, tt.header)
			if r.status != tt.wantStatus || !strings.Contains(string(r.body), tt.wantInBody) {
				t.Errorf("%d %s, want %d with %s", r.status, r.body, tt.wantStatus, tt.wantInBody)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
		})
	}
}

// TestAdminListenerClosesLast checks that during Shutdown, while a public request is still in
// flight and the public listener refuses new connections, the admin listener still answers
// /readyz (503, draining); and that it is closed once Shutdown returns.
func TestAdminListenerClosesLast(t *testing.T) {
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
	gw, admin := startAdminGateway(t, baseYAML(be.addr, "server: {admin_listen: '127.0.0.1:0'}"))
	gw.waitReadyAt(t, admin)
	inflight := make(chan reply, 1)
	go func() { inflight <- do(t, nil, "GET", gw.url+"/v1/orders/o-1", nil, customer()) }()
	poll(t, "the request to reach the upstream", func() bool { return be.count() == 1 })
	gw.Drain()
	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- gw.Shutdown(ctx)
	}()
	fresh := pollRefused(t, "the public listener to refuse new connections", gw.url)
	if r := do(t, fresh, "GET", admin+PathReadyz, nil, nil); r.status != 503 || !strings.Contains(string(r.body), `"draining":true`) {
		t.Errorf("admin /readyz during shutdown: %d %s", r.status, r.body)
	}
	close(release)
	if r := <-inflight; r.status != 200 {
		t.Errorf("in-flight request: %d %s", r.status, r.body)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if resp, err := fresh.Get(admin + PathHealthz); err == nil {
		_ = resp.Body.Close()
		t.Error("the admin listener still answers after Shutdown")
	}
}

// TestServeAdminWithoutAdminListen checks that ServeAdmin refuses at once without
// server.admin_listen.
func TestServeAdminWithoutAdminListen(t *testing.T) {
	srv, err := New(parse(t, "listen: 127.0.0.1:0"), Options{Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.ServeAdmin(ln); err == nil || !strings.Contains(err.Error(), "admin_listen is not set") {
		t.Errorf("ServeAdmin = %v", err)
	}
}

// waitReadyAt polls base's /readyz until 200.
func (g *gateway) waitReadyAt(t *testing.T, base string) {
	t.Helper()
	(&gateway{url: base}).waitReady(t)
}

// TestDrainSettingsNotReloadable checks that a reload changing server.drain_delay or
// server.admin_listen is refused, naming the server section, and changes nothing.
func TestDrainSettingsNotReloadable(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	tests := []struct{ name, server string }{
		{"drain delay", "server: {drain_delay: 30s}\n"},
		{"admin listener", "server: {admin_listen: '127.0.0.1:0'}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := gw.Reload(parse(t, baseYAML(be.addr, tt.server)))
			if err == nil || !strings.Contains(err.Error(), "server settings changed: restart the gateway") {
				t.Errorf("Reload = %v, want a refusal naming the server settings", err)
			}
			if got := gw.Config().Server; got.DrainDelay != 5*time.Second || got.AdminListen != "" {
				t.Errorf("server section after the refused reload: %+v", got)
			}
		})
	}
}
