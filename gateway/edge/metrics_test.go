package edge_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/metrics"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
)

// scrape returns what a Prometheus scrape of reg reads, in OpenMetrics when accept asks for it.
func scrape(t *testing.T, reg *prometheus.Registry, accept string) string {
	t.Helper()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("GET", "/metrics", nil)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	promhttp.HandlerFor(reg, promhttp.HandlerOpts{EnableOpenMetrics: true}).ServeHTTP(rec, req)
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

// TestRequestMetricsLabels sends requests through the access log and checks the route template,
// the normalized method and the status label, and the exemplar of a traced request.
func TestRequestMetricsLabels(t *testing.T) {
	tid, _ := trace.TraceIDFromHex("0af7651916cd43dd8448eb211c80319c")
	sid, _ := trace.SpanIDFromHex("b7ad6b7169203331")
	traced := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled})
	tests := []struct {
		name     string
		method   string
		route    *policy.Route // nil: no route matched
		status   int
		sc       trace.SpanContext
		series   string
		exemplar bool
	}{
		{"routed", "GET", &policy.Route{Path: "/v1/orders/{id}"}, 200, trace.SpanContext{},
			`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/v1/orders/{id}"} 1`, false},
		{"no route", "GET", nil, 404, trace.SpanContext{},
			`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route="none"} 1`, false},
		{"unknown method", "BREW", nil, 405, trace.SpanContext{},
			`http_server_request_duration_seconds_count{http_request_method="_OTHER",http_response_status_code="405",http_route="none"} 1`, false},
		{"traced", "POST", &policy.Route{Path: "/v1/orders"}, 201, traced,
			`http_server_request_duration_seconds_count{http_request_method="POST",http_response_status_code="201",http_route="/v1/orders"} 1`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := metrics.New(metrics.Config{}, reg)
			if err != nil {
				t.Fatal(err)
			}
			h := stack(nil, m, 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				edge.StateFrom(r.Context()).Route = tt.route
				edge.StateFrom(r.Context()).Traced = tt.sc.IsValid() // as the trace stage marks a traced request
				w.WriteHeader(tt.status)
			}))
			// What the tracing stage does before the access log: the server span in the context.
			withSpan := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				h.ServeHTTP(w, r.WithContext(trace.ContextWithSpanContext(r.Context(), tt.sc)))
			})
			withSpan.ServeHTTP(httptest.NewRecorder(), httptest.NewRequestWithContext(context.Background(), tt.method, "/v1/anything/x-1", nil))
			text := scrape(t, reg, "")
			if !strings.Contains(text, tt.series) {
				t.Errorf("metrics lack %s:\n%s", tt.series, text)
			}
			om := scrape(t, reg, "application/openmetrics-text; version=1.0.0")
			got := false
			for _, line := range strings.Split(om, "\n") {
				_, ex, ok := strings.Cut(line, " # {")
				got = got || ok && strings.Contains(ex, `trace_id="0af7651916cd43dd8448eb211c80319c"`) && strings.Contains(ex, `span_id="b7ad6b7169203331"`)
			}
			if got != tt.exemplar {
				t.Errorf("OpenMetrics scrape has the exemplar: %v, want %v:\n%s", got, tt.exemplar, om)
			}
		})
	}
}
