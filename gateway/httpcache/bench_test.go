package httpcache

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/acme/shopgate/gateway/policy"
)

// BenchmarkStageGET is what the cache stage adds to a GET of a route without a response
// cache: the pooled writer, the hash of the body, two header values.
func BenchmarkStageGET(b *testing.B) {
	body := []byte(`{"id":"o-1","customerId":"alice","items":[],"status":"ORDER_STATUS_PENDING","totalCents":"1234","currency":"","paymentMethod":"","createTime":null,"updateTime":null}`)
	s, err := New(Config{}, false, Options{})
	if err != nil {
		b.Fatal(err)
	}
	rt := &policy.Route{RPC: "/x.v1.X/Get"}
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"without", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })},
		{"with", s.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) }))},
	} {
		b.Run(tc.name, func(b *testing.B) {
			r := httptest.NewRequest(http.MethodGet, "/v1/orders/o-1", nil)
			r = r.WithContext(policy.NewContext(r.Context(), rt))
			w := &discardWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				tc.h.ServeHTTP(w, r)
			}
		})
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}
