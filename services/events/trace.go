package events

import (
	"context"
	"maps"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc/metadata"

	"github.com/acme/shopgate/internal/telemetry/wire"
)

// The gRPC metadata keys of the W3C trace context, as the gateway forwards them.
const (
	MDTraceParent = "traceparent"
	MDTraceState  = "tracestate"
)

// maxTraceHeader caps a carried trace header (W3C: tracestate is at most 512 characters).
const maxTraceHeader = 512

// TraceContextFromMetadata returns the caller's W3C trace context (traceparent, tracestate)
// from gRPC metadata, nil when there is none. A repeated, empty or oversized value is dropped,
// not stored. A service records it in the envelope of the event a request causes.
func TraceContextFromMetadata(md metadata.MD) map[string]string {
	var tc map[string]string
	for _, k := range [...]string{MDTraceParent, MDTraceState} {
		if v := md.Get(k); len(v) == 1 && v[0] != "" && len(v[0]) <= maxTraceHeader {
			if tc == nil {
				tc = make(map[string]string, 2)
			}
			tc[k] = v[0]
		}
	}
	return tc
}

// RequestTraceContext returns the trace context a request handler records in the envelope of
// the event the request causes: that of the request's span when ctx has one (tracing on: the
// service's server span), else the caller's, from md (TraceContextFromMetadata).
func RequestTraceContext(ctx context.Context, md metadata.MD) map[string]string {
	if tc := spanTraceContext(ctx); tc != nil {
		return tc
	}
	return TraceContextFromMetadata(md)
}

// spanTraceContext returns the W3C trace context of ctx's span, nil when ctx has none.
func spanTraceContext(ctx context.Context) map[string]string {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return nil
	}
	tc := make(propagation.MapCarrier, 2)
	wire.Propagator.Inject(ctx, tc)
	return tc
}

// WithIncomingTraceContext returns ctx carrying the trace context of its incoming gRPC
// metadata (TraceContextFromMetadata), for a request handler whose transaction records events.
func WithIncomingTraceContext(ctx context.Context) context.Context {
	md, _ := metadata.FromIncomingContext(ctx)
	return WithTraceContext(ctx, TraceContextFromMetadata(md))
}

// traceContextKey is the context key of the trace context WithTraceContext stores.
type traceContextKey struct{}

// WithTraceContext returns ctx carrying tc, the W3C trace context ("traceparent", "tracestate")
// of the event or request being handled, replacing any trace context ctx carried; an empty tc
// means none. tc is copied. On calls it for every event it hands to a handler.
func WithTraceContext(ctx context.Context, tc map[string]string) context.Context {
	if len(tc) == 0 {
		tc = nil
	}
	return context.WithValue(ctx, traceContextKey{}, maps.Clone(tc))
}

// TraceContextFrom returns the trace context ctx carries (see WithTraceContext), for the
// envelopes the handler records (AppendOutcome passes it to NewEnvelope), so that an event
// carries the trace context of the event that caused it. With tracing on, ctx's span (the
// consumer span of the event handled, or the service's server span of a request) comes
// first: the event's producer span becomes its child. It returns a copy, nil when ctx
// carries none.
func TraceContextFrom(ctx context.Context) map[string]string {
	if tc := spanTraceContext(ctx); tc != nil {
		return tc
	}
	tc, _ := ctx.Value(traceContextKey{}).(map[string]string)
	return maps.Clone(tc)
}
