package telemetry_test

import (
	"context"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/telemetry"
	"github.com/acme/shopgate/internal/telemetry/otlptest"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// The OTEL_* variables any test here sets, cleared first so the machine's own do not leak in.
var otelEnv = []string{"OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_PROTOCOL",
	"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_SERVICE_NAME",
	"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_RESOURCE_ATTRIBUTES"}

func setEnv(t *testing.T, env map[string]string) {
	t.Helper()
	for _, k := range otelEnv {
		t.Setenv(k, "")
	}
	for k, v := range env {
		t.Setenv(k, v)
	}
}

func TestSetupOff(t *testing.T) {
	for _, exp := range []string{"", "none", " none "} {
		t.Run("exporter="+exp, func(t *testing.T) {
			setEnv(t, map[string]string{"OTEL_TRACES_EXPORTER": exp})
			tr, err := telemetry.Setup(context.Background(), telemetry.Options{Role: "gateway"})
			if err != nil {
				t.Fatal(err)
			}
			if tr.Enabled() || tr.Provider != nil || tr.Exporter != "none" {
				t.Fatalf("tracing on with OTEL_TRACES_EXPORTER=%q: %+v", exp, tr)
			}
			if err := tr.Shutdown(context.Background()); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestSetupRefuses(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
		opts telemetry.Options
	}{
		{"no role", map[string]string{"OTEL_TRACES_EXPORTER": "console"}, telemetry.Options{}},
		{"unknown exporter", map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, telemetry.Options{Role: "order"}},
		{"two exporters", map[string]string{"OTEL_TRACES_EXPORTER": "otlp,console"}, telemetry.Options{Role: "order"}},
		{"unknown protocol", map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, telemetry.Options{Role: "order"}},
		{"bad ratio", map[string]string{"OTEL_TRACES_EXPORTER": "console", "OTEL_TRACES_SAMPLER_ARG": "2"}, telemetry.Options{Role: "order"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			setEnv(t, tt.env)
			if tr, err := telemetry.Setup(context.Background(), tt.opts); err == nil {
				_ = tr.Shutdown(context.Background())
				t.Fatalf("Setup accepted %v", tt.env)
			}
		})
	}
}

// TestSetupExports starts each exporter the environment can name, records one span and checks
// what reached the in-process receiver: the protocol, the service name and the sampler.
func TestSetupExports(t *testing.T) {
	rcv := otlptest.New(t)
	tests := []struct {
		name        string
		env         map[string]string
		opts        telemetry.Options
		wantService string
		wantNS      string
		wantSampled bool // a root span without a parent
	}{
		{"http/protobuf by default, role as name", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.HTTPEndpoint(), "OTEL_TRACES_SAMPLER_ARG": "1"},
			telemetry.Options{Role: "gateway"}, "gateway", "", true},
		{"grpc", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.GRPCEndpoint(), "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_TRACES_SAMPLER": "always_on"},
			telemetry.Options{Role: "order"}, "order", "", true},
		{"OTEL_SERVICE_NAME wins", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.HTTPEndpoint(), "OTEL_SERVICE_NAME": "checkout", "OTEL_TRACES_SAMPLER": "always_on"},
			telemetry.Options{Role: "payment"}, "checkout", "", true},
		{"a part keeps its role", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.HTTPEndpoint(), "OTEL_SERVICE_NAME": "shop", "OTEL_TRACES_SAMPLER": "always_on"},
			telemetry.Options{Role: "inventory", Part: true}, "inventory", "shop", true},
		{"sampler from the environment", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.HTTPEndpoint(), "OTEL_TRACES_SAMPLER": "always_off"},
			telemetry.Options{Role: "storefront"}, "storefront", "", false},
		{"default ratio 0 by its arg", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.HTTPEndpoint(), "OTEL_TRACES_SAMPLER_ARG": "0"},
			telemetry.Options{Role: "storefront"}, "storefront", "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}
			for k, v := range tt.env {
				env[k] = v
			}
			setEnv(t, env)
			tr, err := telemetry.Setup(context.Background(), tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !tr.Enabled() {
				t.Fatal("tracing off")
			}
			_, span := tr.Provider.Tracer("test").Start(context.Background(), tt.name, trace.WithAttributes(attribute.String("case", tt.name)))
			sampled := span.SpanContext().IsSampled()
			id := span.SpanContext().TraceID().String()
			span.End()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := tr.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if sampled != tt.wantSampled {
				t.Fatalf("sampled %v, want %v", sampled, tt.wantSampled)
			}
			got := rcv.Trace(id)
			if !tt.wantSampled {
				if len(got) != 0 {
					t.Fatalf("an unsampled span was exported: %+v", got)
				}
				return
			}
			if len(got) != 1 || got[0].Name != tt.name || got[0].Service != tt.wantService || got[0].Attrs["case"] != tt.name {
				t.Fatalf("received %+v, want one span %q of service %q", got, tt.name, tt.wantService)
			}
			if ns, _ := tr.Resource.Set().Value("service.namespace"); ns.AsString() != tt.wantNS {
				t.Fatalf("service.namespace %q, want %q", ns.AsString(), tt.wantNS)
			}
		})
	}
}

func TestSetupConsole(t *testing.T) {
	setEnv(t, map[string]string{"OTEL_TRACES_EXPORTER": "console"})
	tr, err := telemetry.Setup(context.Background(), telemetry.Options{Role: "gateway"})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	if !tr.Enabled() || tr.Exporter != "console" {
		t.Fatalf("console: %+v", tr)
	}
}
