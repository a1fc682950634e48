package bench

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/telemetry"
	"github.com/acme/shopgate/internal/telemetry/otlptest"
)

// tracedGateway starts a gateway traced as internal/telemetry sets it up from env (OTLP/HTTP
// to rcv, batched), flushed and stopped at the end.
func tracedGateway(b *testing.B, upstream string, rcv *otlptest.Receiver, env map[string]string) *httpTarget {
	b.Helper()
	for _, k := range []string{"OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		b.Setenv(k, "")
	}
	b.Setenv("OTEL_TRACES_EXPORTER", "otlp")
	b.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.HTTPEndpoint())
	b.Setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
	for k, v := range env {
		b.Setenv(k, v)
	}
	tr, err := telemetry.Setup(context.Background(), telemetry.Options{Role: "gateway"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = tr.Shutdown(ctx)
	})
	url, token := startTracedGateway(b, upstream, false, tr.Provider)
	return newHTTPTarget(url, token)
}

// BenchmarkTracing measures the gateway with tracing off (as `make bench` runs it), with
// tracing on at the default sampler (parent-based, 10% of new traces: the requests carry no
// traceparent) and with every request sampled (always_on), in alternating blocks of
// pairedBlock requests within one loop, as BenchmarkPaired does. The spans go through the
// SDK's batch span processor to an in-process OTLP/HTTP receiver that counts and discards
// them. It reports each front's mean wall time per request (off-ns/op, default-ns/op,
// all-ns/op) and the ratios to tracing off (default/off, all/off).
//
//	go test -run '^$' -bench Tracing -benchtime 3s ./gateway/bench/
func BenchmarkTracing(b *testing.B) {
	upstream := startUpstream(b)
	rcv := otlptest.New(b)
	rcv.Discard = true
	url, token := startGateway(b, upstream, false)
	fronts := [3]*httpTarget{
		newHTTPTarget(url, token),
		tracedGateway(b, upstream, rcv, nil),
		tracedGateway(b, upstream, rcv, map[string]string{"OTEL_TRACES_SAMPLER": "always_on"}),
	}
	for _, req := range []struct {
		name, method, path, body string
		signedIn                 bool
	}{
		{"get", http.MethodGet, getPath, "", false},
		{"post", http.MethodPost, postPath, postBody, true},
	} {
		b.Run(req.name, func(b *testing.B) {
			var took [3]time.Duration
			var n [3]int
			i := 0
			for b.Loop() {
				f := (i / pairedBlock) % 3
				i++
				start := time.Now()
				fronts[f].do(b, req.method, req.path, req.body, req.signedIn)
				took[f] += time.Since(start)
				n[f]++
			}
			if n[0] == 0 || n[1] == 0 || n[2] == 0 {
				return // too few iterations to compare
			}
			var mean [3]float64
			for k := range mean {
				mean[k] = float64(took[k]) / float64(n[k])
			}
			b.ReportMetric(mean[0], "off-ns/op")
			b.ReportMetric(mean[1], "default-ns/op")
			b.ReportMetric(mean[2], "all-ns/op")
			b.ReportMetric(mean[1]/mean[0], "default/off")
			b.ReportMetric(mean[2]/mean[0], "all/off")
		})
	}
}
