// Package metrics holds the gateway's request metrics (Prometheus), named and labelled after the
// OpenTelemetry HTTP semantic conventions in their Prometheus form: the request duration
// histogram http_server_request_duration_seconds by http_request_method, http_route (the
// route's template) and http_response_status_code, with a {trace_id, span_id} exemplar when
// the request is traced and sampled, and http_server_active_requests. The histogram's _count
// is the request counter. They are registered on the prometheus.Registerer the process passes
// in, never on the global default registry.
package metrics

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// DefaultBuckets are the latency histogram's buckets, in seconds (1 ms to 10 s).
var DefaultBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// NoRoute is the http_route label of a request that matched no route (404, 405, and the
// requests refused before routing): one series, whatever the path, so that scanning bots do
// not grow the label set.
const NoRoute = "none"

// OtherMethod is the http_request_method label of a method the HTTP conventions do not name
// (GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH), as the conventions say.
const OtherMethod = "_OTHER"

// Config tunes the metrics. The zero value means the defaults.
type Config struct {
	// Buckets of the latency histogram in seconds. Default: DefaultBuckets.
	Buckets []float64
}

// Metrics records requests. Its methods are safe for concurrent use.
type Metrics struct {
	duration *prometheus.HistogramVec
	active   prometheus.Gauge
	pools    *prometheus.CounterVec
	upstream *Upstream

	// series caches each method and route's children of the histogram (copy on write):
	// WithLabelValues hashes and validates its label values and takes the vector's lock on
	// every call. It holds what the vector holds (one entry per method, route and status
	// seen), no more.
	series   atomic.Pointer[map[seriesKey]*series]
	seriesMu sync.Mutex
}

type seriesKey struct{ method, route string }

// series are one method and route's histograms by status.
type series struct {
	byStatus atomic.Pointer[map[int]prometheus.Observer] // copy on write
	mu       sync.Mutex
}

// New creates the metrics and registers them on reg (nil: not registered, still usable).
func New(cfg Config, reg prometheus.Registerer) (*Metrics, error) {
	if cfg.Buckets == nil {
		cfg.Buckets = DefaultBuckets
	}
	m := &Metrics{
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "http_server_request_duration_seconds",
			Help:    "Duration of HTTP server requests, from the request's arrival to the handler's return, by method, route template (\"" + NoRoute + "\" when no route matched) and status.",
			Buckets: cfg.Buckets,
		}, []string{"http_request_method", "http_route", "http_response_status_code"}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "http_server_active_requests",
			Help: "HTTP requests being served.",
		}),
		pools: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "gateway", Name: "upstream_pool_requests_total",
			Help: "Upstream calls by service and the pool they were sent to (services with named pools only; a fallback counts where it went).",
		}, []string{"service", "pool"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.duration, m.active, m.pools} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("registering gateway metrics: %w", err)
			}
		}
	}
	var err error
	if m.upstream, err = NewUpstream(reg); err != nil {
		return nil, fmt.Errorf("registering gateway metrics: %w", err)
	}
	return m, nil
}

// Upstream returns the upstream call metrics (grpc_client_*), for the pipeline's
// upstream-metrics stage.
func (m *Metrics) Upstream() *Upstream { return m.upstream }

// PoolCounter returns the counter of calls to a service's pool
// (gateway_upstream_pool_requests_total): resolve it once, increment it per call.
func (m *Metrics) PoolCounter(service, pool string) prometheus.Counter {
	return m.pools.WithLabelValues(service, pool)
}

// Start counts a request in flight; call Done when it ends.
func (m *Metrics) Start() { m.active.Inc() }

// Done records a finished request: method is the request's, route the matched route's template
// ("" when none matched). When ctx carries a sampled OpenTelemetry span context, the
// observation carries it as the exemplar {trace_id, span_id}.
func (m *Metrics) Done(ctx context.Context, method, route string, status int, elapsed time.Duration) {
	m.active.Dec()
	if route == "" {
		route = NoRoute
	}
	method = Method(method)
	obs := m.seriesOf(method, route).observer(m.duration, method, route, status)
	if sc := trace.SpanContextFromContext(ctx); sc.IsSampled() && sc.IsValid() {
		observeWithExemplar(obs, elapsed.Seconds(), sc)
		return
	}
	obs.Observe(elapsed.Seconds())
}

// exemplarLabels recycles the exemplar's label map: the histogram copies the labels into the
// exemplar it keeps.
var exemplarLabels = sync.Pool{New: func() any { return prometheus.Labels{"trace_id": "", "span_id": ""} }}

func observeWithExemplar(obs prometheus.Observer, v float64, sc trace.SpanContext) {
	eo, ok := obs.(prometheus.ExemplarObserver)
	if !ok {
		obs.Observe(v)
		return
	}
	l := exemplarLabels.Get().(prometheus.Labels)
	l["trace_id"], l["span_id"] = sc.TraceID().String(), sc.SpanID().String()
	eo.ObserveWithExemplar(v, l)
	exemplarLabels.Put(l)
}

// Method returns the http_request_method label of an HTTP method: the method when the HTTP
// conventions name it, else OtherMethod. It never allocates.
func Method(method string) string {
	switch method {
	case "GET":
		return "GET"
	case "HEAD":
		return "HEAD"
	case "POST":
		return "POST"
	case "PUT":
		return "PUT"
	case "DELETE":
		return "DELETE"
	case "CONNECT":
		return "CONNECT"
	case "OPTIONS":
		return "OPTIONS"
	case "TRACE":
		return "TRACE"
	case "PATCH":
		return "PATCH"
	}
	return OtherMethod
}

// seriesOf returns the method and route's series, creating them on their first request.
func (m *Metrics) seriesOf(method, route string) *series {
	return loadOrAdd(&m.series, &m.seriesMu, seriesKey{method, route}, func() *series { return &series{} })
}

// observer returns the histogram of the series' method, route and status, creating it on
// first use.
func (se *series) observer(vec *prometheus.HistogramVec, method, route string, status int) prometheus.Observer {
	return loadOrAdd(&se.byStatus, &se.mu, status, func() prometheus.Observer {
		return vec.WithLabelValues(method, route, statusText(status))
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

// Duration returns the request duration histogram (labels http_request_method, http_route,
// http_response_status_code), for tests.
func (m *Metrics) Duration() *prometheus.HistogramVec { return m.duration }
