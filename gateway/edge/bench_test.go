package edge_test

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/acme/shopgate/gateway/metrics"
)

// BenchmarkEdge measures the edge layers (recover, request id, access log + metrics, body
// limit) around a handler that does nothing, with and without the access log line:
//
//	go test -run '^$' -bench Edge -benchmem ./gateway/edge
func BenchmarkEdge(b *testing.B) {
	m, err := metrics.New(metrics.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	noop := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, bc := range []struct {
		name   string
		logger *slog.Logger
	}{
		{"json-access-log", slog.New(slog.NewJSONHandler(io.Discard, nil))},
		{"no-access-log", slog.New(slog.DiscardHandler)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			h := stack(bc.logger, m, 1<<20, noop)
			req := httptest.NewRequest("GET", "/v1/inventory/items/sku-1", nil)
			w := httptest.NewRecorder()
			b.ReportAllocs()
			for b.Loop() {
				r := req.Clone(req.Context())
				h.ServeHTTP(w, r)
			}
		})
	}
}
