// Package wire is how trace context travels between the parts: the W3C propagator and
// otelgrpc's stats handlers. It is what the instrumented packages (gateway/tracing,
// services/events, services/grpcserver) import; setting tracing up from the environment, with
// the exporters, is internal/telemetry's, which only cmd/ imports, so that the gateway and the
// services as libraries do not link the exporters.
package wire

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Propagator is the W3C trace context (traceparent, tracestate) every part injects and
// extracts: in HTTP headers, gRPC metadata and event message headers.
var Propagator propagation.TextMapPropagator = propagation.TraceContext{}

// otelgrpcOptions are the options of both stats handlers: tp's spans, W3C trace context in
// the metadata, and no metrics (each part has its own Prometheus metrics).
func otelgrpcOptions(tp trace.TracerProvider) []otelgrpc.Option {
	return []otelgrpc.Option{otelgrpc.WithTracerProvider(tp), otelgrpc.WithPropagators(Propagator),
		otelgrpc.WithMeterProvider(noop.NewMeterProvider())}
}

// GRPCServerOptions returns the server options of tracing: otelgrpc's server stats handler (a
// server span per call, continuing the caller's trace context from the metadata). tp nil:
// none.
func GRPCServerOptions(tp trace.TracerProvider) []grpc.ServerOption {
	if tp == nil {
		return nil
	}
	return []grpc.ServerOption{grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpcOptions(tp)...))}
}

// GRPCDialOptions returns the dial options of tracing: otelgrpc's client stats handler (a
// client span per call, its context injected into the call's metadata, replacing any
// traceparent already there). tp nil: none.
func GRPCDialOptions(tp trace.TracerProvider) []grpc.DialOption {
	if tp == nil {
		return nil
	}
	return []grpc.DialOption{grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpcOptions(tp)...))}
}
