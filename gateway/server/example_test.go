package server_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/server"
	"github.com/acme/shopgate/internal/shopapi"
)

// Build a gateway from YAML and serve it; here through httptest, in production with
// srv.ListenAndServe() and srv.Shutdown(ctx).
func ExampleNew() {
	cfg, err := config.Parse([]byte(`
listen: 127.0.0.1:0
upstreams:
  shop.inventory.v1.InventoryService: {addresses: ["127.0.0.1:9103"]}
`))
	if err != nil {
		panic(err)
	}
	srv, err := server.New(cfg, server.Options{Logger: slog.New(slog.DiscardHandler), Services: shopapi.Services()})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	for _, path := range []string{"/healthz", "/v1/nowhere", "/v1/orders"} {
		resp, err := http.Get(hs.URL + path)
		if err != nil {
			panic(err)
		}
		resp.Body.Close()
		fmt.Println(path, resp.StatusCode)
	}
	// Output:
	// /healthz 200
	// /v1/nowhere 404
	// /v1/orders 404
}

// The pipeline is the one ordered table of the stages a request passes, from the first net/http
// middleware to grpc-go's retries; the gateway is wired from it, and TestStackOrder checks that a
// real request passes exactly these stages.
func ExampleServer_Pipeline() {
	cfg, err := config.Parse([]byte(`
upstreams:
  shop.order.v1.OrderService: {addresses: ["127.0.0.1:9101"]}
`))
	if err != nil {
		panic(err)
	}
	srv, err := server.New(cfg, server.Options{Logger: slog.New(slog.DiscardHandler), Services: shopapi.Services()})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	fmt.Print(srv.Pipeline())
	// Output:
	// 1.  edge      recover           a panic becomes a 500 google.rpc.Status; the connection is kept
	// 2.  edge      request-id        keeps a well-formed X-Request-Id or makes one; every answer carries it
	// 3.  edge      trace             with tracing on: the request's server span, continuing a traceparent; absent when off
	// 4.  edge      access-log        one access log line and the request metrics per request
	// 5.  edge      cors              CORS headers; preflights are answered here
	// 6.  edge      ip-global         global IP allow and deny lists: 403
	// 7.  edge      abuse             an address with too many 401s (default 30 in 1m): 429 with Retry-After
	// 8.  edge      body-limit        a body over limits.max_body_bytes: 413
	// 9.  edge      head              a HEAD is served as the GET of its path, without the body
	// 10. router    router            grpc-gateway mux: method and path to a route; 404, or 405 with Allow
	// 11. route     ip-route          the route's allow_cidrs and deny_cidrs: 403
	// 12. route     auth              authenticates (JWT, API key) and authorizes (roles): 401, 403
	// 13. route     rate-limit        per caller and RPC: 429 with Retry-After; 503 while a fail-closed backend is down
	// 14. route     cache             GET: ETag, 304 on If-None-Match, Cache-Control; the route's response cache; writes invalidate
	// 15. route     stream-limit      a caller holding streams.max_per_caller (10) open server streams: 429 with Retry-After
	// 16. route     pool              a service with pools: the first of its rules that matches picks the pool (gateway/traffic)
	// 17. route     forwarding        a bad Idempotency-Key: 400; Authorization and X-Forwarded-* never go upstream
	// 18. route     stream-write      a stream's write deadline follows its route timeout (with server.write_timeout set)
	// 19. route     sse               a stream is server-sent events for Accept: text/event-stream (heartbeats), else NDJSON
	// 20. handler   transcode         generated handler: JSON to protobuf (400), the upstream call, protobuf to JSON
	// 21. client    passport          the verified identity as a signed passport (x-passport), cached per caller and service
	// 22. client    deadline          whose deadline binds: the route's timeout, or the client's shorter Grpc-Timeout
	// 23. client    breaker           per RPC and pool (breaker.scope): 503 at once while open; counts upstream failures only
	// 24. client    early-refusal     a stream refused before its first message answers with its status, not a 200
	// 25. client    upstream-metrics  grpc_client_* metrics of each call that goes upstream (once, whatever its retries)
	// 26. transport timeout           grpc-go bounds the call, all attempts, by its route timeout; sends it as grpc-timeout
	// 27. transport retry             grpc-go retries idempotent RPCs (UNAVAILABLE) with backoff, within a token budget
}
