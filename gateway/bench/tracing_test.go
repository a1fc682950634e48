//go:build tracingbench

// Built only with -tags tracingbench (make bench-tracing): it links the OpenTelemetry SDK and
// exporters (internal/telemetry), which the gateway library itself does not, so that make
// bench's binary measures the gateway as it is linked without them.

package bench

import (
	"context"
	"net/http"
	"runtime/metrics"
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
// them. It reports each front's mean wall time, process CPU time (client, gateway, upstream
// and exporter together) and heap allocations per request (off-ns/op, off-cpu-ns/op,
// off-allocs/op, and the same for default and all), and the ratios to tracing off of the
// wall time (default/off, all/off) and of the CPU time (default/off-cpu, all/off-cpu).
//
//	go test -tags tracingbench -run '^$' -bench Tracing -benchtime 3s ./gateway/bench/
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
			var took, cpu [3]time.Duration
			var n, allocs [3]uint64
			sample := []metrics.Sample{{Name: "/gc/heap/allocs:objects"}}
			heapAllocs := func() uint64 { metrics.Read(sample); return sample[0].Value.Uint64() }
			blockCPU, blockAllocs := processCPU(), heapAllocs()
			i := 0
			for b.Loop() {
				f := (i / pairedBlock) % 3
				if i > 0 && i%pairedBlock == 0 { // a block ends: its CPU and allocations are the previous front's
					prev := (f + 2) % 3
					c, a := processCPU(), heapAllocs()
					cpu[prev] += c - blockCPU
					allocs[prev] += a - blockAllocs
					blockCPU, blockAllocs = c, a
				}
				i++
				start := time.Now()
				fronts[f].do(b, req.method, req.path, req.body, req.signedIn)
				took[f] += time.Since(start)
				n[f]++
			}
			if i < 3*pairedBlock+1 {
				return // too few iterations to compare
			}
			last := ((i - 1) / pairedBlock) % 3
			cpu[last] += processCPU() - blockCPU
			allocs[last] += heapAllocs() - blockAllocs
			var wall, cpuPer, allocsPer [3]float64
			for k := range wall {
				wall[k] = float64(took[k]) / float64(n[k])
				cpuPer[k] = float64(cpu[k]) / float64(n[k])
				allocsPer[k] = float64(allocs[k]) / float64(n[k])
			}
			for k, name := range [3]string{"off", "default", "all"} {
				b.ReportMetric(wall[k], name+"-ns/op")
				b.ReportMetric(cpuPer[k], name+"-cpu-ns/op")
				b.ReportMetric(allocsPer[k], name+"-allocs/op")
			}
			b.ReportMetric(wall[1]/wall[0], "default/off")
			b.ReportMetric(wall[2]/wall[0], "all/off")
			b.ReportMetric(cpuPer[1]/cpuPer[0], "default/off-cpu")
			b.ReportMetric(cpuPer[2]/cpuPer[0], "all/off-cpu")
		})
	}
}
