package abuse

import (
	"github.com/prometheus/client_golang/prometheus"

	gwmetrics "github.com/acme/shopgate/gateway/metrics"
)

// metrics are the detector's collectors; a reload reuses the series of the previous detector.
type metrics struct {
	failures      prometheus.Counter
	blocks        prometheus.Counter
	refused       prometheus.Counter
	backendErrors *prometheus.CounterVec // backend
	degraded      *prometheus.GaugeVec   // backend
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Name: name, Help: help})
	}
	m := &metrics{
		failures: counter("gateway_abuse_failures_total", "Failed authentications (401 answers) counted per client address."),
		blocks:   counter("gateway_abuse_blocks_total", "Client addresses blocked for too many failed authentications (counted by the replica that made the block)."),
		refused:  counter("gateway_abuse_refused_total", "Requests refused with 429 because their client address is blocked."),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_abuse_backend_errors_total",
			Help: "Abuse backend calls that failed (timeouts, connection errors), by backend.",
		}, []string{"backend"}),
		degraded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_abuse_backend_degraded",
			Help: "1 while the abuse backend is unreachable and each replica counts alone.",
		}, []string{"backend"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	for _, c := range []*prometheus.Counter{&m.failures, &m.blocks, &m.refused} {
		if *c, err = gwmetrics.RegisterOrReuse(reg, *c); err != nil {
			return nil, err
		}
	}
	if m.backendErrors, err = gwmetrics.RegisterOrReuse(reg, m.backendErrors); err != nil {
		return nil, err
	}
	m.degraded, err = gwmetrics.RegisterOrReuse(reg, m.degraded)
	return m, err
}
