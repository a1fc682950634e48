package telemetry

import (
	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/otel/metric/noop"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

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
