package server

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/internal/shopapi"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// benchYAML lifts the default rate limit out of the way: the benchmark measures the stack.
const benchYAML = "defaults: {rate_limit: {requests: 1000000000, per: 1s}}\n"

// The three benchmarks serve GET /v1/inventory/items/{sku} in process (httptest recorder) over a
// real loopback gRPC connection to the same backend; compare ns/op and allocs/op:
//
//	go test -run '^$' -bench 'Gateway|BareMux' -benchmem ./gateway/server
func BenchmarkBareMux(b *testing.B) {
	be := startBackend(b)
	conn, err := grpc.NewClient(be.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	mux := runtime.NewServeMux()
	if err := inventoryv1.RegisterInventoryServiceHandler(context.Background(), mux, conn); err != nil {
		b.Fatal(err)
	}
	benchGet(b, mux, nil)
}

func BenchmarkGatewayPublic(b *testing.B) {
	h := benchGateway(b)
	benchGet(b, h, nil)
}

func BenchmarkGatewayAPIKey(b *testing.B) {
	h := benchGateway(b)
	benchGet(b, h, http.Header{"X-Api-Key": {adminKey}})
}

// BenchmarkGatewayPooled is BenchmarkGatewayAPIKey with the inventory service's calls going
// through a pool stage and router: a canary pool and a header rule and a 30% weight rule,
// neither matching this caller (the choice is made, the call goes to the default pool).
func BenchmarkGatewayPooled(b *testing.B) {
	h := benchGatewayYAML(b, func(addr string) string {
		return strings.Replace(baseYAML(addr, benchYAML), `  shop.inventory.v1.InventoryService: {addresses: ["`+addr+`"]}`,
			`  shop.inventory.v1.InventoryService:
    addresses: ["`+addr+`"]
    pools: {canary: {addresses: ["`+addr+`"]}}
    rules:
      - {pool: canary, header: {name: X-Canary, value: "1"}}
      - {pool: canary, weight: 30}`, 1)
	})
	benchGet(b, h, http.Header{"X-Api-Key": {adminKey}})
}

func benchGateway(b *testing.B) http.Handler {
	return benchGatewayYAML(b, func(addr string) string { return baseYAML(addr, benchYAML) })
}

func benchGatewayYAML(b *testing.B, yaml func(addr string) string) http.Handler {
	b.Helper()
	be := startBackend(b)
	srv, err := New(parse(b, yaml(be.addr)), Options{Logger: discardLogger(), Services: shopapi.Services()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Close() })
	return srv.Handler()
}

func benchGet(b *testing.B, h http.Handler, header http.Header) {
	b.Helper()
	req := httptest.NewRequest("GET", "/v1/inventory/items/sku-1", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	for k, v := range header {
		req.Header[k] = v
	}
	// Warm up: connections READY, route keys cached.
	for range 100 {
		h.ServeHTTP(httptest.NewRecorder(), req.Clone(context.Background()))
	}
	if rec := httptest.NewRecorder(); true {
		h.ServeHTTP(rec, req.Clone(context.Background()))
		if rec.Code != 200 {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		r := req.Clone(context.Background())
		h.ServeHTTP(httptest.NewRecorder(), r)
	}
}
