package tracing_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"testing"

	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/tracing"
)

// TestOffAddsNothing: without a provider the stage is the next handler itself and the dial
// options are none, so a request pays nothing.
func TestOffAddsNothing(t *testing.T) {
	t.Parallel()
	next := http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})
	if got := tracing.Middleware(nil, false)(next); reflect.ValueOf(got).Pointer() != reflect.ValueOf(next).Pointer() {
		t.Error("the stage wraps the handler with tracing off")
	}
	if opts := tracing.DialOptions(nil); len(opts) != 0 {
		t.Errorf("%d dial options with tracing off", len(opts))
	}
}

// TestServerSpan: the span's name and attributes after the handler ran, for a routed request,
// an unrouted one and a failure, and the span in the handler's context.
func TestServerSpan(t *testing.T) {
	t.Parallel()
	route := &policy.Route{HTTPMethod: "GET", Path: "/v1/orders/{id}", RPC: "/shop.order.v1.OrderService/GetOrder"}
	tests := []struct {
		name      string
		route     *policy.Route
		status    int
		wantName  string
		wantRoute string
		wantError bool
	}{
		{"routed", route, http.StatusOK, "GET /v1/orders/{id}", "/v1/orders/{id}", false},
		{"unrouted", nil, http.StatusNotFound, "GET", "", false},
		{"upstream failure", route, http.StatusServiceUnavailable, "GET /v1/orders/{id}", "/v1/orders/{id}", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rec := tracetest.NewSpanRecorder()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
			defer func() { _ = tp.Shutdown(context.Background()) }()
			var inside trace.SpanContext
			h := edge.RequestID(tracing.Middleware(tp, false)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				inside = trace.SpanContextFromContext(r.Context())
				if tt.route != nil {
					st, _, _ := edge.Ensure(w, r)
					st.Route, st.RPC = tt.route, tt.route.RPC
				}
				w.WriteHeader(tt.status)
			})))
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/v1/orders/o-1", nil))
			spans := rec.Ended()
			if len(spans) != 1 {
				t.Fatalf("%d spans, want 1", len(spans))
			}
			s := spans[0]
			if s.Name() != tt.wantName || s.SpanKind() != trace.SpanKindServer || s.SpanContext().SpanID() != inside.SpanID() {
				t.Errorf("span %q (%v, %v), want %q, a server span, the one the handler saw (%v)", s.Name(), s.SpanKind(), s.SpanContext().SpanID(), tt.wantName, inside.SpanID())
			}
			attrs := map[string]string{}
			for _, a := range s.Attributes() {
				attrs[string(a.Key)] = a.Value.Emit()
			}
			if attrs["http.route"] != tt.wantRoute || attrs["url.path"] != "/v1/orders/o-1" || attrs["http.request.method"] != "GET" ||
				attrs["http.response.status_code"] != strconv.Itoa(tt.status) {
				t.Errorf("attributes %v", attrs)
			}
			if (s.Status().Code == codes.Error) != tt.wantError {
				t.Errorf("status %v, want error %v", s.Status(), tt.wantError)
			}
		})
	}
}
