package ratelimit

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	gwmetrics "github.com/acme/shopgate/gateway/metrics"
)

// metrics are the stage's collectors. Per-RPC children are resolved once per RPC, not per
// request.
type metrics struct {
	requests      *prometheus.CounterVec // rpc, result
	backendErrors *prometheus.CounterVec // backend
	degraded      *prometheus.GaugeVec   // backend

	mu     sync.RWMutex
	perRPC map[string]*rpcMetrics
}

type rpcMetrics struct {
	allowed, limited, unavailable prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_ratelimit_requests_total",
			Help: "Rate-limited requests by RPC and result (allowed, limited, unavailable).",
		}, []string{"rpc", "result"}),
		backendErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_ratelimit_backend_errors_total",
			Help: "Rate limit backend calls that failed (timeouts, connection errors), by backend.",
		}, []string{"backend"}),
		degraded: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_ratelimit_backend_degraded",
			Help: "1 while the rate limit backend is unreachable and its failure mode applies.",
		}, []string{"backend"}),
		perRPC: make(map[string]*rpcMetrics),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = gwmetrics.RegisterOrReuse(reg, m.requests); err != nil {
		return nil, err
	}
	if m.backendErrors, err = gwmetrics.RegisterOrReuse(reg, m.backendErrors); err != nil {
		return nil, err
	}
	if m.degraded, err = gwmetrics.RegisterOrReuse(reg, m.degraded); err != nil {
		return nil, err
	}
	return m, nil
}

func (m *metrics) forRPC(rpc string) *rpcMetrics {
	m.mu.RLock()
	r, ok := m.perRPC[rpc]
	m.mu.RUnlock()
	if ok {
		return r
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if r, ok = m.perRPC[rpc]; ok {
		return r
	}
	r = &rpcMetrics{
		allowed:     m.requests.WithLabelValues(rpc, "allowed"),
		limited:     m.requests.WithLabelValues(rpc, "limited"),
		unavailable: m.requests.WithLabelValues(rpc, "unavailable"),
	}
	m.perRPC[rpc] = r
	return r
}
