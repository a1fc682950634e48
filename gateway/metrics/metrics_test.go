package metrics_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"
)

// count returns the histogram's observation count for the labels.
func count(t *testing.T, m *metrics.Metrics, method, route, code string) uint64 {
	t.Helper()
	h, err := m.Duration().GetMetricWithLabelValues(method, route, code)
	if err != nil {
		t.Fatal(err)
	}
	var out dto.Metric
	if err := h.(prometheus.Metric).Write(&out); err != nil {
		t.Fatal(err)
	}
	return out.GetHistogram().GetSampleCount()
}

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Config{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		method, route string
		status        int
	}{
		{"GET", "/v1/orders/{id}", 200},
		{"GET", "/v1/orders/{id}", 200},
		{"GET", "", 404},
		{"BREW", "", 405},     // a method the conventions do not name
		{"PROPFIND", "", 405}, // joins it
		{"POST", "/v1/orders", 999},
	}
	for _, tt := range tests {
		m.Start()
		m.Done(context.Background(), tt.method, tt.route, tt.status, 3*time.Millisecond)
	}
	want := `
# HELP http_server_active_requests HTTP requests being served.
# TYPE http_server_active_requests gauge
http_server_active_requests 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "http_server_active_requests"); err != nil {
		t.Error(err)
	}
	for _, tt := range []struct {
		method, route, code string
		want                uint64
	}{
		{"GET", "/v1/orders/{id}", "200", 2},
		{"GET", metrics.NoRoute, "404", 1},
		{metrics.OtherMethod, metrics.NoRoute, "405", 2},
		{"POST", "/v1/orders", "999", 1},
	} {
		if got := count(t, m, tt.method, tt.route, tt.code); got != tt.want {
			t.Errorf("duration{%s,%s,%s} count = %v, want %v", tt.method, tt.route, tt.code, got, tt.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "http_server_request_duration_seconds"); err != nil || n != 4 {
		t.Errorf("%d duration series (%v), want 4: an unknown method must not add a series", n, err)
	}
	if _, err := metrics.New(metrics.Config{}, reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
}

func TestMethod(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"GET", "GET"}, {"HEAD", "HEAD"}, {"POST", "POST"}, {"PUT", "PUT"}, {"DELETE", "DELETE"},
		{"CONNECT", "CONNECT"}, {"OPTIONS", "OPTIONS"}, {"TRACE", "TRACE"}, {"PATCH", "PATCH"},
		{"get", metrics.OtherMethod}, {"", metrics.OtherMethod}, {"QUERY", metrics.OtherMethod},
	} {
		if got := metrics.Method(tt.in); got != tt.want {
			t.Errorf("Method(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestExemplar checks that a request whose context carries a sampled span context leaves a
// {trace_id, span_id} exemplar on its bucket, and that an unsampled one leaves none.
func TestExemplar(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	tests := []struct {
		name  string
		flags trace.TraceFlags
		want  bool
	}{
		{"sampled", trace.FlagsSampled, true},
		{"not sampled", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := metrics.New(metrics.Config{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			sc := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: tt.flags})
			ctx := trace.ContextWithSpanContext(context.Background(), sc)
			m.Start()
			m.Done(ctx, "GET", "/v1/orders/{id}", 200, 3*time.Millisecond)
			h, _ := m.Duration().GetMetricWithLabelValues("GET", "/v1/orders/{id}", "200")
			var out dto.Metric
			if err := h.(prometheus.Metric).Write(&out); err != nil {
				t.Fatal(err)
			}
			var got map[string]string
			for _, b := range out.GetHistogram().GetBucket() {
				if e := b.GetExemplar(); e != nil {
					got = map[string]string{}
					for _, l := range e.GetLabel() {
						got[l.GetName()] = l.GetValue()
					}
					if e.GetValue() != 0.003 {
						t.Errorf("exemplar value %v, want 0.003", e.GetValue())
					}
				}
			}
			if !tt.want {
				if got != nil {
					t.Errorf("exemplar %v on an unsampled request", got)
				}
				return
			}
			if got["trace_id"] != tid.String() || got["span_id"] != sid.String() || len(got) != 2 {
				t.Errorf("exemplar %v, want trace_id %s span_id %s", got, tid, sid)
			}
		})
	}
}

func TestDoneDoesNotAllocate(t *testing.T) {
	m, err := metrics.New(metrics.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	m.Done(ctx, "GET", "/v1/orders/{id}", 200, time.Millisecond) // create the series
	if n := testing.AllocsPerRun(100, func() { m.Start(); m.Done(ctx, "GET", "/v1/orders/{id}", 200, time.Millisecond) }); n > 0 {
		t.Errorf("Done allocates %v times per request", n)
	}
}

// TestDoneConcurrent records from many goroutines at once, on series that exist and series
// they create, and checks every request is counted once.
func TestDoneConcurrent(t *testing.T) {
	m, err := metrics.New(metrics.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	routes := []string{"/v1/a", "/v1/b", ""}
	codes := []int{200, 404, 503}
	const workers, each = 8, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m.Start()
				m.Done(context.Background(), "GET", routes[(w+i)%len(routes)], codes[i%len(codes)], time.Millisecond)
			}
		}()
	}
	wg.Wait()
	var total uint64
	for _, route := range []string{"/v1/a", "/v1/b", metrics.NoRoute} {
		for _, code := range []string{"200", "404", "503"} {
			total += count(t, m, "GET", route, code)
		}
	}
	if total != workers*each {
		t.Errorf("counted %v requests, want %d", total, workers*each)
	}
}

// BenchmarkDone compares Done (children cached per method, route and status) with looking the
// child up by its label values on every request, and measures a sampled request's exemplar:
//
//	go test -run '^$' -bench Done -benchmem ./gateway/metrics
func BenchmarkDone(b *testing.B) {
	m, err := metrics.New(metrics.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	const route = "/v1/inventory/items/{sku}"
	ctx := context.Background()
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Start()
			m.Done(ctx, "GET", route, 200, time.Millisecond)
		}
	})
	b.Run("by-labels", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Start()
			m.Duration().WithLabelValues("GET", route, "200").Observe(time.Millisecond.Seconds())
		}
	})
	b.Run("sampled-exemplar", func(b *testing.B) {
		tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
		sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
		sctx := trace.ContextWithSpanContext(ctx, trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
		b.ReportAllocs()
		for b.Loop() {
			m.Start()
			m.Done(sctx, "GET", route, 200, time.Millisecond)
		}
	})
}
