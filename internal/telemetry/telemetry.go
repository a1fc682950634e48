// Package telemetry sets up OpenTelemetry tracing for one part of the shop (the gateway, a
// service, the storefront) from the standard environment variables. Every binary calls Setup
// once at start and the returned Tracing's Shutdown before it exits (it flushes the spans
// still buffered).
//
// The environment (the OpenTelemetry SDK's own names and meanings):
//
//   - OTEL_TRACES_EXPORTER: otlp, console or none. Default none: tracing is off, Setup
//     installs nothing, Tracing.Provider is nil and nothing is added to any hot path (no
//     gRPC stats handler, no gateway stage, no span per event); the gateway then forwards
//     the client's traceparent and tracestate unchanged, as before tracing existed. The
//     exporter is built by go.opentelemetry.io/contrib/exporters/autoexport, which reads
//     the rest of the OTLP variables.
//   - OTEL_EXPORTER_OTLP_ENDPOINT (and _TRACES_ENDPOINT, _HEADERS, _TIMEOUT...): where OTLP
//     goes. Default: the SDK's (http://localhost:4318 for http/protobuf, localhost:4317 for
//     grpc).
//   - OTEL_EXPORTER_OTLP_PROTOCOL (or _TRACES_PROTOCOL): http/protobuf (default) or grpc.
//   - OTEL_SERVICE_NAME: the service.name resource attribute. Default: the part's role
//     (gateway, order, payment, inventory, storefront). OTEL_RESOURCE_ATTRIBUTES adds more.
//   - OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG: the SDK's samplers (always_on,
//     parentbased_traceidratio, ...), applied by the SDK itself.
//   - OTEL_BSP_*: the batch span processor's queue and delays (the SDK's defaults).
//
// The default sampler, when OTEL_TRACES_SAMPLER is not set, is parentbased_traceidratio
// with a ratio of DefaultSampleRatio (0.1), or OTEL_TRACES_SAMPLER_ARG when that is set.
// The specification's default, parentbased_always_on, records and exports every request: at
// the gateway's rates that is one batch export per few requests and a collector sized for the
// whole traffic (BenchmarkTracing in gateway/bench measures the cost per request of both).
// Parent-based, so that every part follows the decision the trace's root made: a trace is
// kept whole or not at all, and a client's sampled traceparent is honoured (a caller
// debugging a request gets its trace). A request without traceparent still starts a trace
// (its ids are in the access log) even when it is not sampled.
//
// cmd/shop runs the gateway and the services in one process: it calls Setup once per part
// with Options.Part set, so that each part has its own TracerProvider, exporter and
// resource (service.name = the role, whatever OTEL_SERVICE_NAME says; that one goes to
// service.namespace), and a trace shows the four parts as in a deployment of separate
// binaries. No global provider or propagator is installed: each part passes its Provider to
// what it instruments.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/contrib/exporters/autoexport"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// DefaultSampleRatio is the share of new traces (requests without a sampled parent) recorded
// when OTEL_TRACES_SAMPLER is not set.
const DefaultSampleRatio = 0.1

// The environment variables Setup reads itself; the SDK and autoexport read the others.
const (
	EnvExporter   = "OTEL_TRACES_EXPORTER"
	EnvSampler    = "OTEL_TRACES_SAMPLER"
	EnvSamplerArg = "OTEL_TRACES_SAMPLER_ARG"
	EnvService    = "OTEL_SERVICE_NAME"
)

// Options configures Setup.
type Options struct {
	// Role is the part's name and the default service.name: gateway, order, payment,
	// inventory or storefront. Required.
	Role string
	// Part marks one part of a process hosting several (cmd/shop): service.name is Role even
	// when OTEL_SERVICE_NAME is set, and OTEL_SERVICE_NAME becomes service.namespace.
	// Default false.
	Part bool
	// Getenv reads the environment. Default os.Getenv. (The SDK and autoexport always read
	// the process environment for the variables Setup does not read itself.)
	Getenv func(string) string
}

// Tracing is the tracing of one part: its Provider, nil when tracing is off.
type Tracing struct {
	// Provider makes the part's tracers. nil when OTEL_TRACES_EXPORTER is none or unset: pass
	// it as is, every instrumented package treats nil as off.
	Provider trace.TracerProvider
	// Exporter names the exporter chosen (none, otlp, console).
	Exporter string
	// Resource is the part's resource, nil when off.
	Resource *resource.Resource

	sdk *sdktrace.TracerProvider
}

// Setup reads the environment and returns the part's Tracing. With the exporter none (the
// default) it returns a Tracing with a nil Provider at no cost. An unknown exporter or
// protocol, or a malformed sampler ratio, is an error.
func Setup(ctx context.Context, opts Options) (*Tracing, error) {
	if opts.Role == "" {
		return nil, errors.New("telemetry: no role")
	}
	getenv := opts.Getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	exp := strings.TrimSpace(getenv(EnvExporter))
	if exp == "" || exp == "none" {
		return &Tracing{Exporter: "none"}, nil
	}
	if strings.Contains(exp, ",") {
		return nil, fmt.Errorf("telemetry: %s=%q: one exporter, please", EnvExporter, exp)
	}
	sampler, err := defaultSampler(getenv)
	if err != nil {
		return nil, err
	}
	exporter, err := autoexport.NewSpanExporter(ctx)
	if err != nil {
		return nil, fmt.Errorf("telemetry: %s=%s: %w", EnvExporter, exp, err)
	}
	res := resourceFor(opts, getenv)
	popts := []sdktrace.TracerProviderOption{sdktrace.WithBatcher(exporter), sdktrace.WithResource(res)}
	if sampler != nil {
		popts = append(popts, sdktrace.WithSampler(sampler))
	}
	tp := sdktrace.NewTracerProvider(popts...)
	return &Tracing{Provider: tp, Exporter: exp, Resource: res, sdk: tp}, nil
}

// defaultSampler returns the sampler of an unset OTEL_TRACES_SAMPLER (see the package doc),
// nil when it is set: the SDK applies that one itself.
func defaultSampler(getenv func(string) string) (sdktrace.Sampler, error) {
	if strings.TrimSpace(getenv(EnvSampler)) != "" {
		return nil, nil
	}
	ratio := DefaultSampleRatio
	if arg := strings.TrimSpace(getenv(EnvSamplerArg)); arg != "" {
		v, err := strconv.ParseFloat(arg, 64)
		if err != nil || v < 0 || v > 1 {
			return nil, fmt.Errorf("telemetry: %s=%q: want a ratio from 0 to 1", EnvSamplerArg, arg)
		}
		ratio = v
	}
	return sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio)), nil
}

// resourceFor returns the part's resource: service.name is the role unless OTEL_SERVICE_NAME
// overrides it (not for a Part); the SDK adds OTEL_RESOURCE_ATTRIBUTES and its own below it.
func resourceFor(opts Options, getenv func(string) string) *resource.Resource {
	name := opts.Role
	attrs := []attribute.KeyValue{}
	if env := strings.TrimSpace(getenv(EnvService)); env != "" {
		if opts.Part {
			attrs = append(attrs, attribute.String("service.namespace", env))
		} else {
			name = env
		}
	}
	attrs = append(attrs, attribute.String("service.name", name))
	return resource.NewSchemaless(attrs...)
}

// Enabled reports whether tracing is on.
func (t *Tracing) Enabled() bool { return t != nil && t.Provider != nil }

// Shutdown flushes the spans still buffered and stops the exporter; ctx bounds the wait. It
// does nothing when tracing is off.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if t == nil || t.sdk == nil {
		return nil
	}
	return t.sdk.Shutdown(ctx)
}
