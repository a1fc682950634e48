package gwmain

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/server"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/internal/shopapi"
	"github.com/acme/shopgate/services/inventory"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// gatedInventory is the real inventory service whose GetItem of "sku-slow" waits for the
// gate: a request the test holds in flight.
type gatedInventory struct {
	*inventory.Service
	entered chan struct{}
	gate    chan struct{}
}

func (g gatedInventory) GetItem(ctx context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.Item, error) {
	if req.GetSku() == "sku-slow" {
		g.entered <- struct{}{}
		select {
		case <-g.gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		req = &inventoryv1.GetItemRequest{Sku: "sku-apple"}
	}
	return g.Service.GetItem(ctx, req)
}

// startInventory serves the inventory service (SQLite in a temporary folder, the demo items)
// with gRPC health checking on a free loopback port.
func startInventory(t *testing.T) (addr string, inv gatedInventory) {
	t.Helper()
	store, err := inventory.OpenSQLite(filepath.Join(t.TempDir(), "inventory.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = store.Close() })
	if err := inventory.SeedDemo(context.Background(), store); err != nil {
		t.Fatal(err)
	}
	inv = gatedInventory{Service: inventory.New(store, inventory.Options{Logger: slog.New(slog.DiscardHandler)}),
		entered: make(chan struct{}, 1), gate: make(chan struct{})}
	srv := grpc.NewServer()
	inventoryv1.RegisterInventoryServiceServer(srv, inv)
	healthpb.RegisterHealthServer(srv, health.NewServer()) // SERVING
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String(), inv
}

// logBuffer collects JSON log lines.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

// msgs returns the msg of every line, in order.
func (b *logBuffer) msgs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var l struct{ Msg string }
		if json.Unmarshal([]byte(line), &l) == nil {
			out = append(out, l.Msg)
		}
	}
	return out
}

// fakeClock is a Loop.After the test fires.
type fakeClock struct {
	asked chan time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{asked: make(chan time.Duration, 1), fire: make(chan time.Time)}
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.asked <- d
	return c.fire
}

// running is a Loop serving in the background.
type running struct {
	pub, admin string // base URLs; admin is pub without an admin listener
	inv        gatedInventory
	clock      *fakeClock
	logs       *logBuffer
	stop       context.CancelFunc // the first SIGTERM
	again      chan os.Signal     // a second one
	done       chan error         // Serve's result
	exited     chan struct{}      // closed once Serve returned
}

// startLoop serves a gateway with one upstream (the inventory) through Loop.Serve.
func startLoop(t *testing.T, delay time.Duration, adminListen bool) *running {
	t.Helper()
	addr, inv := startInventory(t)
	yaml := "listen: 127.0.0.1:0\nupstreams: {shop.inventory.v1.InventoryService: {addresses: [\"" + addr + "\"]}}\n"
	if adminListen {
		yaml += "server: {admin_listen: '127.0.0.1:0'}\n"
	}
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r := &running{inv: inv, clock: newFakeClock(), logs: &logBuffer{}, again: make(chan os.Signal, 1), done: make(chan error, 1), exited: make(chan struct{})}
	logger := slog.New(slog.NewJSONHandler(r.logs, nil))
	srv, err := server.New(cfg, server.Options{Logger: logger, AccessLog: slog.New(slog.DiscardHandler), Services: shopapi.Services()})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r.pub, r.admin = "http://"+ln.Addr().String(), "http://"+ln.Addr().String()
	loop := Loop{Server: srv, Logger: logger, ShutdownTimeout: 10 * time.Second, DrainDelay: delay, Again: r.again, After: r.clock.After}
	if adminListen {
		aln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		loop.Admin, r.admin = aln, "http://"+aln.Addr().String()
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.stop = cancel
	go func() {
		r.done <- loop.Serve(ctx, ln, nil)
		close(r.exited)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case r.again <- syscall.SIGTERM:
		default:
		}
		select { // the clock may be waiting
		case r.clock.fire <- time.Now():
		case <-time.After(100 * time.Millisecond):
		}
		select {
		case <-r.exited:
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return")
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		if status, _, err := get(r.admin + server.PathReadyz); err == nil && status == 200 {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatal("the gateway is not ready after 10s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// fresh is a client that opens a new connection per request: what a new client does.
var fresh = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

func get(url string) (int, *http.Response, error) {
	resp, err := fresh.Get(url)
	if err != nil {
		return 0, nil, err
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp.StatusCode, resp, err
}

func bodyOf(resp *http.Response) string {
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// TestDrainPhases checks the phases of a graceful shutdown through Loop.Serve, with and
// without an admin listener: during the drain delay /readyz fails (draining) while new
// connections are accepted and answered (with Connection: close); when the delay ends the
// listener closes while an in-flight request goes on; it finishes, and Serve returns, each phase
// logged.
func TestDrainPhases(t *testing.T) {
	tests := []struct {
		name        string
		adminListen bool
	}{
		{"one listener", false},
		{"admin listener", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startLoop(t, 7*time.Second, tt.adminListen)
			inflight := make(chan int, 1)
			go func() {
				status, _, err := get(r.pub + "/v1/inventory/items/sku-slow")
				if err != nil {
					t.Errorf("in-flight request: %v", err)
				}
				inflight <- status
			}()
			<-r.inv.entered

			r.stop() // SIGTERM
			if d := <-r.clock.asked; d != 7*time.Second {
				t.Errorf("drain delay asked %s, want 7s", d)
			}
			status, resp, err := get(r.admin + server.PathReadyz)
			if err != nil || status != 503 || !strings.Contains(bodyOf(resp), `"draining":true`) {
				t.Errorf("/readyz during the delay: %d %v", status, err)
			}
			status, resp, err = get(r.pub + "/v1/inventory/items/sku-apple") // a new connection
			if err != nil || status != 200 || !strings.Contains(bodyOf(resp), `"sku-apple"`) {
				t.Fatalf("a request during the delay: %d %v", status, err)
			}
			if !resp.Close {
				t.Error("an answer during the delay keeps its connection")
			}
			if tt.adminListen {
				if status, _, err := get(r.pub + server.PathReadyz); err != nil || status != 404 {
					t.Errorf("public /readyz with an admin listener: %d %v", status, err)
				}
			}
			select {
			case err := <-r.done:
				t.Fatalf("Serve returned during the delay: %v", err)
			default:
			}

			r.clock.fire <- time.Now() // the delay ends
			deadline := time.Now().Add(10 * time.Second)
			for { // the listener closes
				if _, _, err := get(r.pub + server.PathHealthz); err != nil {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the public listener still accepts after the delay")
				}
				time.Sleep(10 * time.Millisecond)
			}
			if tt.adminListen { // closed last: still up while a request is in flight
				if status, _, err := get(r.admin + server.PathReadyz); err != nil || status != 503 {
					t.Errorf("admin /readyz while the public requests finish: %d %v", status, err)
				}
			}
			select {
			case err := <-r.done:
				t.Fatalf("Serve returned with a request in flight: %v", err)
			default:
			}
			close(r.inv.gate)
			if status := <-inflight; status != 200 {
				t.Errorf("the in-flight request: %d, want 200", status)
			}
			if err := <-r.done; err != nil {
				t.Errorf("Serve: %v", err)
			}
			if _, _, err := get(r.admin + server.PathHealthz); err == nil {
				t.Error("a listener still accepts after Serve returned")
			}
			want := []string{
				"gateway draining: /readyz answers 503, requests are still served",
				"gateway shutting down: listener closed, in-flight requests finish",
				"gateway stopped",
			}
			if got := r.logs.msgs(); !slices.Equal(got, want) {
				t.Errorf("log lines %q, want %q", got, want)
			}
		})
	}
}

// TestDrainDelayCutShort checks that a second signal during the delay ends it at once, and
// that with no delay the shutdown starts at once and nothing is drained.
func TestDrainDelayCutShort(t *testing.T) {
	tests := []struct {
		name     string
		delay    time.Duration
		wantLogs []string
	}{
		{"second signal", time.Hour, []string{
			"gateway draining: /readyz answers 503, requests are still served",
			"gateway drain delay cut short",
			"gateway shutting down: listener closed, in-flight requests finish",
			"gateway stopped",
		}},
		{"no delay", 0, []string{
			"gateway shutting down: listener closed, in-flight requests finish",
			"gateway stopped",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := startLoop(t, tt.delay, false)
			r.stop()
			if tt.delay > 0 {
				if d := <-r.clock.asked; d != tt.delay {
					t.Errorf("drain delay asked %s, want %s", d, tt.delay)
				}
				r.again <- syscall.SIGTERM
			}
			select {
			case err := <-r.done:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Serve did not return")
			}
			if got := r.logs.msgs(); !slices.Equal(got, tt.wantLogs) {
				t.Errorf("log lines %q, want %q", got, tt.wantLogs)
			}
			select {
			case d := <-r.clock.asked:
				t.Errorf("the clock was asked for %s more", d)
			default:
			}
		})
	}
}
