package metrics_test

import (
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Config{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rpc    string
		status int
		label  string
	}{
		{"/a.B/C", 200, "/a.B/C"},
		{"/a.B/C", 200, "/a.B/C"},
		{"", 404, "none"},
		{"/a.B/D", 999, "/a.B/D"},
	}
	for _, tt := range tests {
		m.Start()
		m.Done(tt.rpc, tt.status, 3*time.Millisecond)
	}
	want := `
# HELP gateway_http_requests_in_flight HTTP requests being served.
# TYPE gateway_http_requests_in_flight gauge
gateway_http_requests_in_flight 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "gateway_http_requests_in_flight"); err != nil {
		t.Error(err)
	}
	for _, tt := range []struct {
		rpc, code string
		want      float64
	}{{"/a.B/C", "200", 2}, {"none", "404", 1}, {"/a.B/D", "999", 1}} {
		if got := testutil.ToFloat64(m.RequestsCounter().WithLabelValues(tt.rpc, tt.code)); got != tt.want {
			t.Errorf("requests{%s,%s} = %v, want %v", tt.rpc, tt.code, got, tt.want)
		}
	}
	if _, err := metrics.New(metrics.Config{}, reg); err == nil {
		t.Error("registering twice on one registry succeeded")
	}
}

func TestDoneDoesNotAllocate(t *testing.T) {
	m, err := metrics.New(metrics.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Done("/a.B/C", 200, time.Millisecond) // create the series
	if n := testing.AllocsPerRun(100, func() { m.Start(); m.Done("/a.B/C", 200, time.Millisecond) }); n > 0 {
		t.Errorf("Done allocates %v times per request", n)
	}
}
