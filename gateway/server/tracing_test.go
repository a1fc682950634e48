package server

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"
)

const clientTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

// upstreamSpan returns the span context the upstream received in the call's metadata.
func upstreamSpan(md metadata.MD) trace.SpanContext {
	carrier := propagation.MapCarrier{}
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := md.Get(k); len(v) > 0 {
			carrier[k] = v[0]
		}
	}
	return trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), carrier))
}

// TestTracing: with a tracer provider the gateway opens a server span per request (named by
// the route template, continuing the client's traceparent or starting a trace) and a client
// span per upstream call, and the upstream sees the gateway's span context, never the
// client's raw traceparent; without one, the client's traceparent goes upstream unchanged.
func TestTracing(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		tracing     bool
		traceparent string
	}{
		{"on, continues the client's trace", true, clientTraceparent},
		{"on, starts a trace", true, ""},
		{"off, forwards the client's traceparent", false, clientTraceparent},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			be := startBackend(t)
			rec := tracetest.NewSpanRecorder()
			var opts Options
			if tt.tracing {
				tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
				t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
				opts.TracerProvider = tp
			}
			gw := startGateway(t, baseYAML(be.addr, ""), opts)
			h := http.Header{}
			if tt.traceparent != "" {
				h.Set("Traceparent", tt.traceparent)
				h.Set("Tracestate", "acme=1")
			}
			if r := do(t, nil, "GET", gw.url+"/v1/inventory/items/sku-1", nil, h); r.status != 200 {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			md := be.last(t).md
			if !tt.tracing {
				if got := md.Get("traceparent"); !slices.Equal(got, []string{tt.traceparent}) {
					t.Fatalf("upstream traceparent %q, want the client's %q", got, tt.traceparent)
				}
				return
			}
			if got := md.Get("traceparent"); len(got) != 1 {
				t.Fatalf("upstream traceparent %q, want one", got)
			}
			var server, client sdktrace.ReadOnlySpan
			for _, s := range rec.Ended() {
				switch s.SpanKind() {
				case trace.SpanKindServer:
					server = s
				case trace.SpanKindClient:
					client = s
				}
			}
			if server == nil || client == nil {
				t.Fatalf("spans %v: want a server and a client span", rec.Ended())
			}
			if server.Name() != "GET /v1/inventory/items/{sku}" {
				t.Errorf("server span %q, want the route template", server.Name())
			}
			attrs := map[string]string{}
			for _, a := range server.Attributes() {
				attrs[string(a.Key)] = a.Value.Emit()
			}
			for k, v := range map[string]string{"http.request.method": "GET", "url.path": "/v1/inventory/items/sku-1",
				"http.route": "/v1/inventory/items/{sku}", "http.response.status_code": "200"} {
				if attrs[k] != v {
					t.Errorf("server span %s = %q, want %q", k, attrs[k], v)
				}
			}
			if client.Parent().SpanID() != server.SpanContext().SpanID() || client.SpanContext().TraceID() != server.SpanContext().TraceID() {
				t.Errorf("client span's parent %v, want the server span %v", client.Parent(), server.SpanContext())
			}
			up := upstreamSpan(md)
			if up.SpanID() != client.SpanContext().SpanID() || up.TraceID() != server.SpanContext().TraceID() {
				t.Errorf("upstream saw %v, want the client span %v", up, client.SpanContext())
			}
			if tt.traceparent != "" {
				if server.Parent().TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || server.Parent().SpanID().String() != "b7ad6b7169203331" || !server.Parent().IsRemote() {
					t.Errorf("server span's parent %v, want the client's traceparent", server.Parent())
				}
				if ts := md.Get("tracestate"); !slices.Equal(ts, []string{"acme=1"}) {
					t.Errorf("upstream tracestate %q, want the client's, carried by the span context", ts)
				}
			} else if server.Parent().IsValid() {
				t.Errorf("server span has parent %v, want a new trace", server.Parent())
			}
			if strings.Contains(md.Get("traceparent")[0], "b7ad6b7169203331") {
				t.Errorf("upstream got the client's span id: %q", md.Get("traceparent"))
			}
		})
	}
}
