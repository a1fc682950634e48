package storefront

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics counts the storefront's partial answers: storefront_partial_total{rpc, part}, one
// per answer sent without a part (rpc "GetOrderView" or "GetHome"; part one of the Part*
// names).
type Metrics struct {
	partials *prometheus.CounterVec
}

// NewMetrics registers the metrics on reg; a collector already registered on it (by another
// storefront of the same process) is reused.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "storefront_partial_total",
		Help: "Storefront answers sent without a part (named in their missing field), by RPC and part.",
	}, []string{"rpc", "part"})
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			return nil, fmt.Errorf("registering storefront metrics: %w", err)
		}
		existing, ok := already.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, fmt.Errorf("registering storefront metrics: %w", err)
		}
		c = existing
	}
	return &Metrics{partials: c}, nil
}

// count counts an answer of rpc without parts.
func (m *Metrics) count(rpc string, parts []string) {
	if m == nil {
		return
	}
	for _, p := range parts {
		m.partials.WithLabelValues(rpc, p).Inc()
	}
}

// Partial returns the counter of rpc's answers without part (for tests and dashboards' checks).
func (m *Metrics) Partial(rpc, part string) prometheus.Counter {
	return m.partials.WithLabelValues(rpc, part)
}
