// Package tracing is the gateway's OpenTelemetry instrumentation: the "trace" edge stage,
// which opens the server span of every request, and the upstream dial option that opens a
// client span per gRPC call (otelgrpc's stats handler) and carries the gateway's span context
// upstream in W3C trace context metadata.
//
// Both take a trace.TracerProvider; nil means tracing is off, and then neither adds anything:
// the stage returns the next handler itself and the dial option list is empty, so a request
// costs exactly what it did before tracing existed (BenchmarkTracing in gateway/bench).
package tracing

import (
	"net/http"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/internal/telemetry/wire"
)

// ScopeName is the instrumentation scope of the gateway's server spans.
const ScopeName = "github.com/acme/shopgate/gateway/tracing"

// The HTTP semantic conventions' attribute keys (semconv v1.26 and later).
const (
	keyMethod = attribute.Key("http.request.method")
	keyPath   = attribute.Key("url.path")
	keyScheme = attribute.Key("url.scheme")
	keyRoute  = attribute.Key("http.route")
	keyStatus = attribute.Key("http.response.status_code")
	keyRPC    = attribute.Key("shopgate.rpc") // the full gRPC method the route calls (the gateway's own key)
)

// Middleware is the "trace" edge stage: a server span per request, named "GET" until routed
// and then "GET /v1/orders/{id}" (the route's template, never the raw path), with
// http.request.method, url.path, url.scheme, http.route, http.response.status_code and
// shopgate.rpc (the full gRPC method routed to). It continues the client's traceparent (and
// tracestate) when there is a valid one, else starts a trace, and puts the span in the
// request's context, so that the stages inside it (the access log, the metrics, the upstream
// call) see it. A 5xx sets the span's status to Error.
// It must run inside request-id (it reads the edge State) and outside the router. tp nil:
// tracing off, the stage is the next handler itself.
//
// tlsListener says that the gateway's listener serves TLS: url.scheme is then "https" (the
// gateway ends TLS below net/http, so r.TLS is nil there); false: "https" only when r.TLS is set.
func Middleware(tp trace.TracerProvider, tlsListener bool) func(http.Handler) http.Handler {
	if tp == nil {
		return func(next http.Handler) http.Handler { return next }
	}
	tracer := tp.Tracer(ScopeName)
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			method := r.Method
			ctx := wire.Propagator.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
			scheme := "http"
			if tlsListener || r.TLS != nil {
				scheme = "https"
			}
			if st := edge.StateFrom(r.Context()); st != nil {
				st.Traced = true // the access log and the metrics look for the span
			}
			ctx, span := tracer.Start(ctx, method, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(keyMethod.String(method), keyPath.String(r.URL.Path), keyScheme.String(scheme)))
			defer func() {
				if !span.IsRecording() {
					span.End()
					return
				}
				st := edge.StateFrom(ctx)
				code := http.StatusInternalServerError // a panic on its way to Recover
				if st != nil {
					if c := st.Status(); c != 0 {
						code = c
					}
					if st.Route != nil && st.Route.Path != "" {
						span.SetName(method + " " + st.Route.Path)
						span.SetAttributes(keyRoute.String(st.Route.Path), keyRPC.String(st.RPC))
					}
				}
				span.SetAttributes(keyStatus.Int(code))
				if code >= 500 {
					span.SetStatus(codes.Error, "")
				}
				span.End()
			}()
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// DialOptions returns the upstream dial options of tracing: otelgrpc's client stats handler
// (a client span per call and no metrics, the W3C trace context injected into the call's
// metadata, replacing any the client sent). tp nil: none.
func DialOptions(tp trace.TracerProvider) []grpc.DialOption { return wire.GRPCDialOptions(tp) }
