package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/passport"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/internal/shopapi"
	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
)

// The API keys the test gateways accept (gateway/auth's X-API-Key).
const (
	customerKey = "test-customer-key-0123456789"
	adminKey    = "test-admin-key-0123456789"
)

func sha(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// call is what a test upstream saw of one call.
type call struct {
	method   string
	md       metadata.MD
	deadline time.Duration // remaining when the call arrived; 0: none
}

// backend is a real gRPC server on 127.0.0.1:0 serving the four shop services, recording
// every call. behave, when set, decides the outcome of unary calls.
type backend struct {
	orderv1.UnimplementedOrderServiceServer
	inventoryv1.UnimplementedInventoryServiceServer
	paymentv1.UnimplementedPaymentServiceServer
	storefrontv1.UnimplementedStorefrontServiceServer // served (UNIMPLEMENTED): its routes resolve

	addr string

	mu     sync.Mutex
	calls  []call
	behave func(ctx context.Context, method string) error
	watch  func(stream grpc.ServerStreamingServer[orderv1.Order]) error
}

func startBackend(t testing.TB, opts ...grpc.ServerOption) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &backend{addr: ln.Addr().String()}
	gs := grpc.NewServer(opts...)
	orderv1.RegisterOrderServiceServer(gs, u)
	inventoryv1.RegisterInventoryServiceServer(gs, u)
	paymentv1.RegisterPaymentServiceServer(gs, u)
	storefrontv1.RegisterStorefrontServiceServer(gs, u)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); hs.Shutdown(); <-done })
	return u
}

func (u *backend) record(ctx context.Context, method string) error {
	md, _ := metadata.FromIncomingContext(ctx)
	c := call{method: method, md: md.Copy()}
	if dl, ok := ctx.Deadline(); ok {
		c.deadline = time.Until(dl)
	}
	u.mu.Lock()
	u.calls = append(u.calls, c)
	behave := u.behave
	u.mu.Unlock()
	if behave != nil {
		return behave(ctx, method)
	}
	return nil
}

func (u *backend) setBehave(f func(ctx context.Context, method string) error) {
	u.mu.Lock()
	u.behave = f
	u.mu.Unlock()
}

func (u *backend) last(t *testing.T) call {
	t.Helper()
	u.mu.Lock()
	defer u.mu.Unlock()
	if len(u.calls) == 0 {
		t.Fatal("the upstream saw no call")
	}
	return u.calls[len(u.calls)-1]
}

func (u *backend) count() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return len(u.calls)
}

func (u *backend) CreateOrder(ctx context.Context, req *orderv1.CreateOrderRequest) (*orderv1.Order, error) {
	if err := u.record(ctx, "CreateOrder"); err != nil {
		return nil, err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-internal-host", "db-7.internal"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-internal-trailer", "secret"))
	return &orderv1.Order{Id: "o-1", CustomerId: passportSubject(md), Status: orderv1.OrderStatus_ORDER_STATUS_PENDING, PaymentMethod: req.GetPaymentMethod()}, nil
}

// passportSubject is the sub of the passport in md, unverified (gateway/passport's tests verify
// passports); "" without one.
func passportSubject(md metadata.MD) string {
	c, ok := passportClaims(md)
	if !ok {
		return ""
	}
	return c.Subject
}

// passportClaims decodes, without verifying it, the one passport in md.
func passportClaims(md metadata.MD) (passport.Claims, bool) {
	var c passport.Claims
	toks := md.Get(passport.MDPassport)
	if len(toks) != 1 {
		return c, false
	}
	if _, _, err := jwt.NewParser().ParseUnverified(toks[0], &c); err != nil {
		return c, false
	}
	return c, true
}

func (u *backend) GetOrder(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.Order, error) {
	if err := u.record(ctx, "GetOrder"); err != nil {
		return nil, err
	}
	return &orderv1.Order{Id: req.GetId(), TotalCents: 1234}, nil
}

func (u *backend) WatchOrder(req *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.Order]) error {
	if err := u.record(stream.Context(), "WatchOrder"); err != nil {
		return err
	}
	u.mu.Lock()
	watch := u.watch
	u.mu.Unlock()
	return watch(stream)
}

func (u *backend) GetItem(ctx context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.Item, error) {
	if err := u.record(ctx, "GetItem"); err != nil {
		return nil, err
	}
	return &inventoryv1.Item{Sku: req.GetSku(), Name: "widget", PriceCents: 500, Currency: "USD", Available: 3}, nil
}

func (u *backend) ListItems(ctx context.Context, _ *inventoryv1.ListItemsRequest) (*inventoryv1.ListItemsResponse, error) {
	if err := u.record(ctx, "ListItems"); err != nil {
		return nil, err
	}
	return &inventoryv1.ListItemsResponse{Items: []*inventoryv1.Item{{Sku: "a"}}}, nil
}

// gateway is a Server under test, serving on a real loopback listener.
type gateway struct {
	*Server
	url string
}

// deadAddr is a loopback address where nothing listens.
func deadAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// baseYAML configures every service on addr, API keys for a customer and an admin, and extra.
func baseYAML(addr string, extra string) string {
	var upstreams strings.Builder
	for _, name := range shopapi.Names() { // every service the registry lists
		upstreams.WriteString("  " + name + `: {addresses: ["` + addr + `"]}` + "\n")
	}
	return `
listen: 127.0.0.1:0
upstreams:
` + upstreams.String() + `auth:
  api_keys:
    - {sha256: "` + sha(customerKey) + `", subject: alice, roles: [customer]}
    - {sha256: "` + sha(adminKey) + `", subject: root, roles: [admin]}
` + extra
}

func parse(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func startGateway(t testing.TB, yaml string, opts Options) *gateway {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	}
	if opts.Services == nil {
		opts.Services = shopapi.Services()
	}
	srv, err := New(parse(t, yaml), opts)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	return &gateway{Server: srv, url: "http://" + ln.Addr().String()}
}

// waitReady polls /readyz until it answers 200 or the deadline passes.
func (g *gateway) waitReady(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(g.url + PathReadyz)
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not ready after 10s (last: %v %v)", resp, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// reply is a response read whole.
type reply struct {
	status int
	header http.Header
	body   []byte
}

// rpcStatus decodes a google.rpc.Status body.
func (r reply) rpcStatus(t testing.TB) (code int, message string, details []map[string]any) {
	t.Helper()
	var st struct {
		Code    int              `json:"code"`
		Message string           `json:"message"`
		Details []map[string]any `json:"details"`
	}
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("body %q is not a google.rpc.Status: %v", r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	return st.Code, st.Message, st.Details
}

func do(t testing.TB, client *http.Client, method, url string, body io.Reader, header http.Header) reply {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading %s %s: %v", method, url, err)
	}
	return reply{status: resp.StatusCode, header: resp.Header, body: b}
}

func customer() http.Header { return http.Header{"X-Api-Key": {customerKey}} }

func jsonBody(s string) io.Reader { return bytes.NewBufferString(s) }

func discardLogger() *slog.Logger { return slog.New(slog.NewJSONHandler(io.Discard, nil)) }
