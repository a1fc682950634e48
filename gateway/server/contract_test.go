package server

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/passport"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestErrorContract walks the rows of the public error table (shared/API.md) that the gateway
// core owns, against a real gateway in front of a real gRPC upstream.
func TestErrorContract(t *testing.T) {
	be := startBackend(t)
	dead := deadAddr(t)
	gw := startGateway(t, baseYAML(be.addr, `
limits: {max_body_bytes: 1024}
routes:
  shop.order.v1.OrderService/GetOrder: {timeout: 100ms}
`), Options{})
	gw.waitReady(t)
	down := startGateway(t, `
listen: 127.0.0.1:0
upstreams:
  shop.payment.v1.PaymentService: {addresses: ["`+dead+`"]}
  shop.inventory.v1.InventoryService: {addresses: ["`+dead+`"]}
routes:
  shop.inventory.v1.InventoryService/ListItems: {fallback: {http_status: 200, json_body: '{"items":[]}'}}
auth:
  api_keys: [{sha256: "`+sha(customerKey)+`", subject: alice, roles: [customer]}]
`, Options{})

	bigBody := `{"paymentMethod":"` + strings.Repeat("x", 2000) + `"}`
	tests := []struct {
		name     string
		gw       *gateway
		method   string
		path     string
		body     io.Reader
		behave   func(context.Context, string) error
		status   int
		code     codes.Code
		msgHas   string // substring the message must contain
		msgLacks string // substring it must not contain
		check    func(t *testing.T, r reply)
	}{
		{name: "malformed JSON", method: "POST", path: "/v1/orders", body: jsonBody(`{"items":`), status: 400, code: codes.InvalidArgument},
		{name: "wrong field type", method: "POST", path: "/v1/orders", body: jsonBody(`{"items":[{"sku":"a","quantity":"many"}]}`), status: 400, code: codes.InvalidArgument, msgHas: "quantity"},
		{name: "unknown field", method: "POST", path: "/v1/orders", body: jsonBody(`{"items":[],"customerId":"mallory"}`), status: 400, code: codes.InvalidArgument, msgHas: "customerId"},
		{name: "unknown path", method: "GET", path: "/v1/nothing/here", status: 404, code: codes.NotFound},
		{name: "known path, wrong method", method: "DELETE", path: "/v1/orders", status: 405, code: codes.Unimplemented,
			check: func(t *testing.T, r reply) {
				if got := r.header.Get("Allow"); got != "GET, HEAD, POST" {
					t.Errorf("Allow = %q, want %q", got, "GET, HEAD, POST")
				}
			}},
		{name: "body over the limit by Content-Length", method: "POST", path: "/v1/orders", body: strings.NewReader(bigBody), status: 413, code: codes.InvalidArgument},
		{name: "chunked body over the limit", method: "POST", path: "/v1/orders", body: io.MultiReader(strings.NewReader(bigBody)), status: 413, code: codes.InvalidArgument},
		{name: "body at the limit passes", method: "POST", path: "/v1/orders", body: io.MultiReader(strings.NewReader(`{"paymentMethod":"` + strings.Repeat("x", 1024-21) + `"}`)), status: 200},
		{name: "INTERNAL is sanitized", method: "GET", path: "/v1/orders/o-1", status: 500, code: codes.Internal, msgHas: "internal error", msgLacks: "10.0.0.5",
			behave: func(context.Context, string) error {
				return status.Error(codes.Internal, "pq: connection to 10.0.0.5:5432 refused")
			}},
		{name: "non-status error is sanitized", method: "GET", path: "/v1/orders/o-1", status: 500, code: codes.Internal, msgLacks: "panic",
			behave: func(context.Context, string) error { return io.ErrUnexpectedEOF }},
		{name: "upstream message of a client error passes", method: "GET", path: "/v1/orders/o-9", status: 404, code: codes.NotFound, msgHas: "order o-9 not found",
			behave: func(context.Context, string) error { return status.Error(codes.NotFound, "order o-9 not found") }},
		{name: "FAILED_PRECONDITION", method: "GET", path: "/v1/orders/o-1", status: 400, code: codes.FailedPrecondition,
			behave: func(context.Context, string) error {
				return status.Error(codes.FailedPrecondition, "order is confirmed")
			}},
		{name: "idempotency key reused", method: "POST", path: "/v1/orders", body: jsonBody(`{}`), status: 422, code: codes.AlreadyExists, msgHas: "Idempotency-Key",
			behave: func(context.Context, string) error {
				st, _ := status.New(codes.AlreadyExists, "Idempotency-Key reused with another body").WithDetails(&errdetails.ErrorInfo{Reason: ReasonIdempotencyKeyReused, Domain: "order"})
				return st.Err()
			},
			check: func(t *testing.T, r reply) {
				if !strings.Contains(string(r.body), ReasonIdempotencyKeyReused) {
					t.Errorf("422 body lost the ErrorInfo: %s", r.body)
				}
			}},
		{name: "slow upstream", method: "GET", path: "/v1/orders/o-1", status: 504, code: codes.DeadlineExceeded,
			behave: func(ctx context.Context, _ string) error { <-ctx.Done(); return ctx.Err() }},
		{name: "upstream down", gw: down, method: "GET", path: "/v1/payments/p-1", status: 503, code: codes.Unavailable, msgLacks: "127.0.0.1"},
		{name: "upstream down with fallback", gw: down, method: "GET", path: "/v1/inventory/items", status: 200,
			check: func(t *testing.T, r reply) {
				if r.header.Get(HeaderFallback) != "true" || strings.TrimSpace(string(r.body)) != `{"items":[]}` {
					t.Errorf("fallback = %q %q", r.header.Get(HeaderFallback), r.body)
				}
			}},
		{name: "unparsable Grpc-Timeout", method: "GET", path: "/v1/orders/o-1?x=1", status: 400, code: codes.InvalidArgument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be.setBehave(tt.behave)
			defer be.setBehave(nil)
			g := tt.gw
			if g == nil {
				g = gw
			}
			h := customer()
			if tt.name == "unparsable Grpc-Timeout" {
				h.Set("Grpc-Timeout", "soon")
			}
			if tt.body != nil {
				h.Set("Content-Type", "application/json")
			}
			r := do(t, nil, tt.method, g.url+tt.path, tt.body, h)
			if r.status != tt.status {
				t.Fatalf("status = %d, want %d (body %s)", r.status, tt.status, r.body)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on the response")
			}
			if tt.status != 200 {
				code, msg, _ := r.rpcStatus(t)
				if codes.Code(code) != tt.code {
					t.Errorf("code = %v, want %v (message %q)", codes.Code(code), tt.code, msg)
				}
				if tt.msgHas != "" && !strings.Contains(msg, tt.msgHas) {
					t.Errorf("message %q lacks %q", msg, tt.msgHas)
				}
				if tt.msgLacks != "" && strings.Contains(string(r.body), tt.msgLacks) {
					t.Errorf("body %s leaks %q", r.body, tt.msgLacks)
				}
			}
			if tt.check != nil {
				tt.check(t, r)
			}
		})
	}
}

// TestMetadataUpstream checks what the upstream receives: one passport naming the verified
// caller whatever identity the client sent, the allow-listed headers, and nothing else.
func TestMetadataUpstream(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	gw.waitReady(t)

	h := customer()
	for _, k := range []string{"X-User-Id", "X-User-Roles", "X-User-Auth", "Grpc-Metadata-X-User-Id", "Grpc-Metadata-X-User-Roles", "Grpc-Metadata-x-user-auth", "X_user_id", "Grpc-Metadata-X_User_Roles"} {
		h[k] = []string{"mallory"} // raw keys: every spelling reaches the gateway as sent
	}
	h.Set("Idempotency-Key", "idem-1")
	h.Set("X-Request-Id", "req-abc.1")
	h.Set("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")
	h.Set("Cookie", "session=secret")
	h.Set("X-Forwarded-For", "6.6.6.6")
	h.Set("X-Forwarded-Host", "evil.example")
	h.Set("Grpc-Metadata-Debug", "1")
	h.Set("Content-Type", "application/json")
	r := do(t, nil, "POST", gw.url+"/v1/orders", jsonBody(`{"paymentMethod":"pm_card_ok"}`), h)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	md := be.last(t).md
	want := map[string][]string{
		"idempotency-key": {"idem-1"},
		"x-request-id":    {"req-abc.1"},
		"traceparent":     {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
	for k, v := range want {
		if got := md.Get(k); !slices.Equal(got, v) {
			t.Errorf("metadata %s = %q, want %q", k, got, v)
		}
	}
	c, ok := passportClaims(md) // one passport, naming the verified caller for the service called
	if !ok || c.Subject != "apikey|alice" || !slices.Equal(c.Roles, []string{"customer"}) || c.Auth != "apikey" ||
		!slices.Equal(c.Audience, []string{"shop.order.v1.OrderService"}) {
		t.Errorf("passport %v = %+v, want apikey|alice (API keys have their own namespace), customer, for the order service", md.Get(passport.MDPassport), c)
	}
	for k := range md {
		switch {
		case k == "authorization", k == "cookie", k == "x-api-key", strings.HasPrefix(k, "x-forwarded"),
			strings.HasPrefix(k, "grpcgateway-authorization"), strings.HasPrefix(k, "grpcgateway-cookie"),
			k == "debug", strings.HasPrefix(k, "x-user"), strings.Contains(k, "_"):
			t.Errorf("metadata %q = %q reached the upstream", k, md.Get(k))
		}
	}

	// Authorization on a public route: verified nowhere, forwarded nowhere.
	h = http.Header{"Authorization": {"Bearer abc.def.ghi"}}
	if r := do(t, nil, "GET", gw.url+"/v1/inventory/items/sku-1", nil, h); r.status != 200 {
		t.Fatalf("public route: %d %s", r.status, r.body)
	}
	md = be.last(t).md
	for _, k := range []string{"authorization", "grpcgateway-authorization", passport.MDPassport} {
		if v := md.Get(k); len(v) > 0 {
			t.Errorf("public route: metadata %s = %q reached the upstream", k, v)
		}
	}
}

// TestNoTransportLeak checks that upstream headers and trailers (and gRPC's own) never reach
// the client.
func TestNoTransportLeak(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	gw.waitReady(t)
	h := customer()
	h.Set("Content-Type", "application/json")
	r := do(t, nil, "POST", gw.url+"/v1/orders", jsonBody(`{}`), h)
	if r.status != 200 {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	for k, v := range r.header {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "grpc-") || strings.Contains(lk, "internal") || strings.Contains(strings.Join(v, ","), "application/grpc") {
			t.Errorf("response header %s: %q leaked", k, v)
		}
	}
	var order map[string]any
	if err := json.Unmarshal(r.body, &order); err != nil {
		t.Fatal(err)
	}
	if order["customerId"] != "apikey|alice" || order["status"] != "ORDER_STATUS_PENDING" {
		t.Errorf("order = %v, want lowerCamelCase fields with the caller as customer", order)
	}
	if _, ok := order["statusReason"]; !ok {
		t.Errorf("order = %v: unpopulated fields are emitted by design", order)
	}
}

// TestDeadline checks that the route timeout bounds the upstream call and a client's
// Grpc-Timeout can only shorten it.
func TestDeadline(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, "routes: {shop.order.v1.OrderService/GetOrder: {timeout: 2s}}"), Options{})
	gw.waitReady(t)
	tests := []struct {
		name        string
		grpcTimeout string
		max, min    time.Duration
	}{
		{"no header: the route timeout", "", 2 * time.Second, time.Second},
		{"a longer header cannot lengthen it", "100H", 2 * time.Second, time.Second},
		{"a shorter header shortens it", "300m", 300 * time.Millisecond, time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := customer()
			if tt.grpcTimeout != "" {
				h.Set("Grpc-Timeout", tt.grpcTimeout)
			}
			if r := do(t, nil, "GET", gw.url+"/v1/orders/o-1", nil, h); r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			d := be.last(t).deadline
			if d <= tt.min || d > tt.max {
				t.Errorf("upstream deadline in %v, want in (%v, %v]", d, tt.min, tt.max)
			}
		})
	}
}

// TestRequestID checks the X-Request-Id rules: a well-formed client id is kept and forwarded,
// anything else is replaced; every response carries one.
func TestRequestID(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	gw.waitReady(t)
	tests := []struct {
		name, sent string
		kept       bool
	}{
		{"well-formed", "abc-123_X.y:z", true},
		{"128 chars", strings.Repeat("a", 128), true},
		{"129 chars", strings.Repeat("a", 129), false},
		{"space", "abc 123", false},
		{"slash", "a/b", false},
		{"absent", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			if tt.sent != "" {
				h.Set("X-Request-Id", tt.sent)
			}
			r := do(t, nil, "GET", gw.url+"/v1/inventory/items/sku-1", nil, h)
			got := r.header.Get("X-Request-Id")
			if tt.kept && got != tt.sent {
				t.Errorf("X-Request-Id = %q, want the client's %q", got, tt.sent)
			}
			if !tt.kept && (got == tt.sent || got == "") {
				t.Errorf("X-Request-Id = %q, want a generated id", got)
			}
			if up := be.last(t).md.Get("x-request-id"); len(up) != 1 || up[0] != got {
				t.Errorf("upstream x-request-id = %q, want [%q]", up, got)
			}
			nf := do(t, nil, "GET", gw.url+"/nope", nil, h)
			if nf.header.Get("X-Request-Id") == "" {
				t.Error("a 404 has no X-Request-Id")
			}
		})
	}
}

// TestRetriesIdempotentOnly checks the retry wiring: an idempotent RPC that fails once with
// UNAVAILABLE is retried and succeeds; a non-idempotent one is not retried.
func TestRetriesIdempotentOnly(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, "retry: {max_attempts: 3, initial_backoff: 1ms, max_backoff: 2ms}\n"), Options{})
	gw.waitReady(t)
	tests := []struct {
		name, method, path string
		status, calls      int
	}{
		{"GET is idempotent: retried", "GET", "/v1/orders/o-1", 200, 2},
		{"POST is not: the failure is final", "POST", "/v1/orders", 503, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var mu sync.Mutex
			attempts := 0
			be.setBehave(func(context.Context, string) error {
				mu.Lock()
				defer mu.Unlock()
				attempts++
				if attempts == 1 {
					return status.Error(codes.Unavailable, "restarting")
				}
				return nil
			})
			defer be.setBehave(nil)
			h := customer()
			var body io.Reader
			if tt.method == "POST" {
				body = jsonBody(`{}`)
				h.Set("Content-Type", "application/json")
			}
			r := do(t, nil, tt.method, gw.url+tt.path, body, h)
			mu.Lock()
			defer mu.Unlock()
			if r.status != tt.status || attempts != tt.calls {
				t.Errorf("status %d after %d attempts, want %d after %d", r.status, attempts, tt.status, tt.calls)
			}
		})
	}
}
