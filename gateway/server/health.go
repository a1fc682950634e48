package server

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// The paths the gateway answers itself, before any route.
const (
	// PathHealthz answers 200 while the process lives.
	PathHealthz = "/healthz"
	// PathReadyz answers 200 when every upstream has a READY connection, else 503.
	PathReadyz = "/readyz"
	// PathMetrics serves the Prometheus metrics.
	PathMetrics = "/metrics"
)

func (s *Server) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
}

// Readiness is the body of /readyz.
type Readiness struct {
	// Ready is true when every upstream is READY.
	Ready bool `json:"ready"`
	// Upstreams maps each upstream service to its connectivity state.
	Upstreams map[string]string `json:"upstreams"`
	// Breakers maps each circuit breaker to its state (closed, open, half-open).
	Breakers map[string]string `json:"breakers"`
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	rd := Readiness{Upstreams: map[string]string{}, Breakers: s.breakers.States()}
	if snap := s.acquire(); snap != nil {
		rd.Ready, rd.Upstreams = snap.conns.set.Ready(), snap.conns.set.States()
		snap.release()
	}
	if rd.Breakers == nil {
		rd.Breakers = map[string]string{}
	}
	body, _ := json.Marshal(rd)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	if !rd.Ready {
		w.WriteHeader(http.StatusServiceUnavailable)
	}
	_, _ = w.Write(append(body, '\n'))
}

func promHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{})
}
