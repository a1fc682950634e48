// Package metrics holds the gateway's request metrics (Prometheus): requests by RPC and HTTP
// status, a latency histogram by RPC, and requests in flight. They are registered on the
// prometheus.Registerer the process passes in, never on the global default registry.
package metrics

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultBuckets are the latency histogram's buckets, in seconds (1 ms to 10 s).
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Config tunes the metrics. The zero value means the defaults.
type Config struct {
	// Namespace prefixes every metric name. Default: "gateway".
	Namespace string
	// Buckets of the latency histogram in seconds. Default: DefaultBuckets.
	Buckets []float64
}

// Metrics records requests. Its methods are safe for concurrent use.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	inFlight prometheus.Gauge
	pools    *prometheus.CounterVec

	// series caches each RPC's children of the vectors (copy on write): WithLabelValues hashes
	// and validates its label values and takes the vector's lock on every call, which Done
	// would pay twice per request. It holds what the vectors hold (one entry per RPC and
	// status seen), no more.
	series   atomic.Pointer[map[string]*series]
	seriesMu sync.Mutex
}

// series are one RPC's children: its latency histogram and its request counters by status.
type series struct {
	latency  prometheus.Observer
	requests atomic.Pointer[map[int]prometheus.Counter] // copy on write
	mu       sync.Mutex
}

// New creates the metrics and registers them on reg (nil: not registered, still usable).
func New(cfg Config, reg prometheus.Registerer) (*Metrics, error) {
	if cfg.Namespace == "" {
		cfg.Namespace = "gateway"
	}
	if cfg.Buckets == nil {
		cfg.Buckets = DefaultBuckets
	}
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: cfg.Namespace, Name: "http_requests_total",
			Help: "HTTP requests by RPC (full gRPC method, \"none\" when no route matched) and HTTP status.",
		}, []string{"rpc", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: cfg.Namespace, Name: "http_request_duration_seconds",
			Help: "Time from the request's arrival to the handler's return, by RPC.", Buckets: cfg.Buckets,
		}, []string{"rpc"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: cfg.Namespace, Name: "http_requests_in_flight",
			Help: "HTTP requests being served.",
		}),
		pools: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: cfg.Namespace, Name: "upstream_pool_requests_total",
			Help: "Upstream calls by service and the pool they were sent to (services with named pools only; a fallback counts where it went).",
		}, []string{"service", "pool"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.requests, m.latency, m.inFlight, m.pools} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering gateway metrics: %w", err)
			}
		}
	}
	return m, nil
}

// PoolCounter returns the counter of calls to a service's pool
// (gateway_upstream_pool_requests_total): resolve it once, increment it per call.
func (m *Metrics) PoolCounter(service, pool string) prometheus.Counter {
	return m.pools.WithLabelValues(service, pool)
}

// Start counts a request in flight; call Done when it ends.
func (m *Metrics) Start() { m.inFlight.Inc() }

// Done records a finished request.
func (m *Metrics) Done(rpc string, status int, elapsed time.Duration) {
	m.inFlight.Dec()
	if rpc == "" {
		rpc = "none"
	}
	se := m.seriesOf(rpc)
	se.counter(m.requests, rpc, status).Inc()
	se.latency.Observe(elapsed.Seconds())
}

// seriesOf returns rpc's series, creating them on its first request.
func (m *Metrics) seriesOf(rpc string) *series {
	return loadOrAdd(&m.series, &m.seriesMu, rpc, func() *series {
		return &series{latency: m.latency.WithLabelValues(rpc)}
	})
}

// counter returns the requests counter of the series' RPC and status, creating it on first use.
func (se *series) counter(vec *prometheus.CounterVec, rpc string, status int) prometheus.Counter {
	return loadOrAdd(&se.requests, &se.mu, status, func() prometheus.Counter {
		return vec.WithLabelValues(rpc, statusText(status))
	})
}

// loadOrAdd returns (*p)[k], adding create() under mu when k is missing: readers take no lock,
// a writer copies the map (entries are few and added once).
func loadOrAdd[K comparable, V any](p *atomic.Pointer[map[K]V], mu *sync.Mutex, k K, create func() V) V {
	if cur := p.Load(); cur != nil {
		if v, ok := (*cur)[k]; ok {
			return v
		}
	}
	mu.Lock()
	defer mu.Unlock()
	cur := p.Load()
	var old map[K]V
	if cur != nil {
		old = *cur
		if v, ok := old[k]; ok {
			return v
		}
	}
	next := make(map[K]V, len(old)+1)
	for key, v := range old {
		next[key] = v
	}
	v := create()
	next[k] = v
	p.Store(&next)
	return v
}

// statusCodes holds the decimal text of every HTTP status, so that labelling allocates nothing.
var statusCodes = func() (t [600]string) {
	for i := range t {
		t[i] = strconv.Itoa(i)
	}
	return t
}()

func statusText(code int) string {
	if code >= 0 && code < len(statusCodes) {
		return statusCodes[code]
	}
	return strconv.Itoa(code)
}

// RequestsCounter returns the requests counter (labels rpc, code), for tests and dashboards.
func (m *Metrics) RequestsCounter() *prometheus.CounterVec { return m.requests }
