package metrics_test

import (
	"strings"
	"sync"
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

// TestDoneConcurrent records from many goroutines at once, on series that exist and series
// they create, and checks every request is counted once.
func TestDoneConcurrent(t *testing.T) {
	m, err := metrics.New(metrics.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	rpcs := []string{"/a.B/C", "/a.B/D", ""}
	codes := []int{200, 404, 503}
	const workers, each = 8, 300
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				m.Start()
				m.Done(rpcs[(w+i)%len(rpcs)], codes[i%len(codes)], time.Millisecond)
			}
		}()
	}
	wg.Wait()
	var total float64
	for _, rpc := range []string{"/a.B/C", "/a.B/D", "none"} {
		for _, code := range []string{"200", "404", "503"} {
			total += testutil.ToFloat64(m.RequestsCounter().WithLabelValues(rpc, code))
		}
	}
	if total != workers*each {
		t.Errorf("counted %v requests, want %d", total, workers*each)
	}
}

// BenchmarkDone compares Done (children cached per RPC and status) with looking the children up
// by their label values on every request, as Done did before:
//
//	go test -run '^$' -bench Done -benchmem ./gateway/metrics
func BenchmarkDone(b *testing.B) {
	m, err := metrics.New(metrics.Config{}, nil)
	if err != nil {
		b.Fatal(err)
	}
	latency := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "l", Buckets: metrics.DefaultBuckets}, []string{"rpc"})
	const rpc = "/shop.inventory.v1.InventoryService/GetItem"
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Start()
			m.Done(rpc, 200, time.Millisecond)
		}
	})
	b.Run("by-labels", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.Start()
			m.RequestsCounter().WithLabelValues(rpc, "200").Inc()
			latency.WithLabelValues(rpc).Observe(time.Millisecond.Seconds())
		}
	})
}
