package bench

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

const (
	getPath  = "/v1/inventory/items/sku-apple"
	postPath = "/v1/orders"
	postBody = `{"items":[{"sku":"sku-apple","quantity":2}],"paymentMethod":"pm_card_ok"}`
)

// dial opens a client connection to the upstream, closed when the benchmark ends.
func dial(tb testing.TB, addr string) *grpc.ClientConn {
	tb.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { _ = conn.Close() })
	return conn
}

// serveHTTP serves h on a loopback port until the benchmark ends and returns its base URL.
func serveHTTP(tb testing.TB, h http.Handler) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	tb.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

// bareGateway is grpc-gateway's ServeMux with its default options: the floor (b).
func bareGateway(tb testing.TB, upstream string) string {
	tb.Helper()
	conn := dial(tb, upstream)
	mux := runtime.NewServeMux()
	ctx := context.Background()
	if err := inventoryv1.RegisterInventoryServiceHandler(ctx, mux, conn); err != nil {
		tb.Fatal(err)
	}
	if err := orderv1.RegisterOrderServiceHandler(ctx, mux, conn); err != nil {
		tb.Fatal(err)
	}
	return serveHTTP(tb, mux)
}

// httpTarget sends the same requests to one HTTP front.
type httpTarget struct {
	base   string
	token  string
	client *http.Client
}

func newHTTPTarget(base, token string) *httpTarget {
	return &httpTarget{base: base, token: token, client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}}
}

// do sends one request; signedIn adds the target's bearer token (the POST needs one on the
// gateway; the public GET is sent as it is to every front, with no credential).
func (t *httpTarget) do(tb testing.TB, method, path, body string, signedIn bool) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, t.base+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if signedIn && t.token != "" {
		req.Header.Set("Authorization", "Bearer "+t.token)
	}
	resp, err := t.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	var buf bytes.Buffer
	_, _ = io.Copy(&buf, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, buf.String())
	}
}

// targets are the fronts of one upstream: (a) direct, (b) bare, (c) gateway, and (d) the
// gateway with its token cache off, which shows what the cache saves per request.
type targets struct {
	direct  *grpc.ClientConn
	bare    *httpTarget
	gateway *httpTarget
	noCache *httpTarget
}

func setup(b *testing.B) targets {
	b.Helper()
	upstream := startUpstream(b)
	gwURL, token := startGateway(b, upstream, false)
	ncURL, ncToken := startGateway(b, upstream, true)
	return targets{
		direct:  dial(b, upstream),
		bare:    newHTTPTarget(bareGateway(b, upstream), token), // the same request bytes as c's
		gateway: newHTTPTarget(gwURL, token),
		noCache: newHTTPTarget(ncURL, ncToken),
	}
}

// measure reports allocations, and the process's CPU time (user and system, every goroutine:
// client, front and upstream) per request as "cpu-ns/op" when the returned func runs at the
// end of the benchmark. Wall time (ns/op) on a small shared machine moves with scheduling and
// wake-ups; CPU time shows the work done.
func measure(b *testing.B) func() {
	b.ReportAllocs()
	start := processCPU()
	return func() { b.ReportMetric(float64(processCPU()-start)/float64(b.N), "cpu-ns/op") }
}

func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkGet is GET /v1/inventory/items/{sku} (public) through each front.
func BenchmarkGet(b *testing.B) {
	t := setup(b)
	b.Run("a_direct", func(b *testing.B) {
		c := inventoryv1.NewInventoryServiceClient(t.direct)
		ctx := context.Background()
		defer measure(b)()
		for b.Loop() {
			if _, err := c.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "sku-apple"}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("b_bare", func(b *testing.B) {
		defer measure(b)()
		for b.Loop() {
			t.bare.do(b, http.MethodGet, getPath, "", false)
		}
	})
	b.Run("c_gateway", func(b *testing.B) {
		defer measure(b)()
		for b.Loop() {
			t.gateway.do(b, http.MethodGet, getPath, "", false)
		}
	})
}

// BenchmarkPost is POST /v1/orders (a body to decode; a bearer token on the gateway).
func BenchmarkPost(b *testing.B) {
	t := setup(b)
	b.Run("a_direct", func(b *testing.B) {
		c := orderv1.NewOrderServiceClient(t.direct)
		ctx := context.Background()
		req := &orderv1.CreateOrderRequest{Items: []*orderv1.OrderLine{{Sku: "sku-apple", Quantity: 2}}, PaymentMethod: "pm_card_ok"}
		defer measure(b)()
		for b.Loop() {
			if _, err := c.CreateOrder(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("b_bare", func(b *testing.B) {
		defer measure(b)()
		for b.Loop() {
			t.bare.do(b, http.MethodPost, postPath, postBody, true)
		}
	})
	b.Run("c_gateway", func(b *testing.B) {
		defer measure(b)()
		for b.Loop() {
			t.gateway.do(b, http.MethodPost, postPath, postBody, true)
		}
	})
	b.Run("d_gateway_nocache", func(b *testing.B) { // every request verifies its EdDSA signature
		defer measure(b)()
		for b.Loop() {
			t.noCache.do(b, http.MethodPost, postPath, postBody, true)
		}
	})
}

// BenchmarkPaired sends the same request to the bare mux (b) and to the gateway (c) in
// alternating blocks of pairedBlock requests within one loop, and reports each front's mean
// wall time per request (b-ns/op, c-ns/op) and their ratio (c/b). A slow spell of the machine,
// which lasts far longer than a block, falls on both fronts alike (separate sub-benchmarks,
// seconds apart, cannot promise that), while each front still serves runs of requests with its
// own code and data warm, as a gateway serving only its own traffic does.
func BenchmarkPaired(b *testing.B) {
	t := setup(b)
	for _, req := range []struct {
		name, method, path, body string
		signedIn                 bool
	}{
		{"get", http.MethodGet, getPath, "", false},
		{"post", http.MethodPost, postPath, postBody, true},
	} {
		b.Run(req.name, func(b *testing.B) {
			fronts := [2]*httpTarget{t.bare, t.gateway}
			var took [2]time.Duration
			var n [2]int
			i := 0
			for b.Loop() {
				f := (i / pairedBlock) % 2
				i++
				start := time.Now()
				fronts[f].do(b, req.method, req.path, req.body, req.signedIn)
				took[f] += time.Since(start)
				n[f]++
			}
			if n[0] == 0 || n[1] == 0 {
				return // too few iterations to compare (b.N below two blocks)
			}
			bare, gw := float64(took[0])/float64(n[0]), float64(took[1])/float64(n[1])
			b.ReportMetric(bare, "b-ns/op")
			b.ReportMetric(gw, "c-ns/op")
			b.ReportMetric(gw/bare, "c/b")
		})
	}
}

// pairedBlock is how many requests in a row BenchmarkPaired sends to one front.
const pairedBlock = 64
