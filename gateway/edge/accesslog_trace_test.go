package edge_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"

	"github.com/acme/shopgate/gateway/edge"
)

var testSpan = trace.NewSpanContext(trace.SpanContextConfig{
	TraceID:    trace.TraceID{0x4b, 0xf9, 0x2f, 0x35, 0x77, 0xb3, 0x4d, 0xa6, 0xa3, 0xce, 0x92, 0x9d, 0x0e, 0x0e, 0x47, 0x36},
	SpanID:     trace.SpanID{0x00, 0xf0, 0x67, 0xaa, 0x0b, 0xa9, 0x02, 0xb7},
	TraceFlags: trace.FlagsSampled,
})

// TestAccessLogTraceFields: both access log writers carry the trace_id and span_id of the
// span in the request's context (the trace stage's), and neither field without one.
func TestAccessLogTraceFields(t *testing.T) {
	t.Parallel()
	writers := []struct {
		name string
		make func(*syncBuffer) func(http.Handler) http.Handler
	}{
		{"slog", func(b *syncBuffer) func(http.Handler) http.Handler {
			return edge.AccessLog(slog.New(slog.NewJSONHandler(b, nil)), nil, nil)
		}},
		{"json", func(b *syncBuffer) func(http.Handler) http.Handler { return edge.AccessLogJSON(b, nil, nil) }},
	}
	for _, wr := range writers {
		for _, traced := range []bool{true, false} {
			t.Run(wr.name+map[bool]string{true: " traced", false: " untraced"}[traced], func(t *testing.T) {
				var out syncBuffer
				h := wr.make(&out)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					edge.StateFrom(r.Context()).Traced = traced // as the trace stage marks a traced request
					w.WriteHeader(http.StatusNoContent)
				}))
				req := httptest.NewRequest("GET", "/x", nil)
				if traced {
					req = req.WithContext(trace.ContextWithSpanContext(context.Background(), testSpan))
				}
				h.ServeHTTP(httptest.NewRecorder(), req)
				line := out.String()
				want := []string{`"trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"`, `"span_id":"00f067aa0ba902b7"`}
				for _, w := range want {
					if got := strings.Contains(line, w); got != traced {
						t.Errorf("line %s: has %s = %v, want %v", line, w, got, traced)
					}
				}
				if !traced && bytes.Contains([]byte(line), []byte("trace_id")) {
					t.Errorf("untraced line %s has a trace_id", line)
				}
			})
		}
	}
}
