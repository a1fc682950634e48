package server

import (
	"encoding/json"
	"net/http"

	"github.com/acme/shopgate/gateway/httperror"
	"github.com/acme/shopgate/gateway/openapi"
	"github.com/acme/shopgate/gateway/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The paths the gateway answers itself, before any route.
const (
	// PathHealthz answers 200 while the process lives.
	PathHealthz = "/healthz"
	// PathReadyz answers 200 when the gateway can serve: it can call every upstream (there is
	// at least one, and each has an instance that is READY, connected and SERVING to health
	// checks, and not ejected: gateway/upstream), and the rate limiter can decide in its failure
	// mode (not a fail-closed Redis limiter whose Redis is away: ratelimit.Limiter.Serving).
	// Else 503, and 503 with "draining":true once a graceful shutdown began (Server.Drain). With
	// server.admin_listen set, it and PathMetrics are served on the admin listener only.
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
	// Ready is true when the gateway can call every upstream: at least one is configured, and
	// each has an instance READY and not ejected.
	Ready bool `json:"ready"`
	// Upstreams maps each upstream service to its connection's connectivity state (READY when
	// any instance is).
	Upstreams map[string]string `json:"upstreams"`
	// Breakers maps each circuit breaker to its state (closed, open, half-open).
	Breakers map[string]string `json:"breakers"`
	// Instances maps each upstream service to its instance counts: ready (READY and not
	// ejected: taking calls), ejected, total.
	Instances map[string]upstream.Instances `json:"instances"`
	// Pools maps each upstream with named pools to the instance counts of each of its pools
	// ("default" included). A named pool without ready instances does not make the gateway
	// unready: its calls fail (or fall back), the others' are served. Left out when no upstream
	// has pools.
	Pools map[string]map[string]upstream.Instances `json:"pools,omitempty"`
	// Limiter is "ok" while the rate limiter can decide, "unavailable" while it refuses every
	// limited request (Redis failing closed, Redis away).
	Limiter string `json:"limiter"`
	// Draining is true once a graceful shutdown began (SIGTERM: Server.Drain): the gateway
	// still serves, but is not ready, so that load balancers send new traffic elsewhere.
	// Left out otherwise.
	Draining bool `json:"draining,omitempty"`
}

// The values of Readiness.Limiter.
const (
	limiterOK          = "ok"
	limiterUnavailable = "unavailable"
)

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	rd := Readiness{Upstreams: map[string]string{}, Breakers: s.breakers.States(), Instances: map[string]upstream.Instances{},
		Limiter: limiterUnavailable}
	if snap := s.acquire(); snap != nil {
		set := snap.conns.set
		rd.Upstreams, rd.Instances = set.States(), set.Instances()
		if pools := set.PoolInstances(); len(pools) > 0 {
			rd.Pools = pools
		}
		limiterServes := snap.limiter.Serving(r.Context()) // at most one Redis PING, bounded by its timeout
		if limiterServes {
			rd.Limiter = limiterOK
		}
		rd.Ready = upstream.CanServe(rd.Instances) && limiterServes // the body's fields say why
		snap.release()
	}
	if s.draining.Load() {
		rd.Ready, rd.Draining = false, true
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
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{EnableOpenMetrics: true}) // exemplars need OpenMetrics
}

// serveReference answers the API reference (gateway/openapi) of the current snapshot: 404 when
// the configuration turns it off (docs.enabled: false).
func (s *Server) serveReference(w http.ResponseWriter, r *http.Request) {
	snap := s.acquire()
	if snap == nil {
		httperror.Write(w, status.New(codes.Unavailable, "shutting down"))
		return
	}
	defer snap.release()
	switch {
	case snap.docs == nil:
		httperror.Write(w, status.New(codes.NotFound, "not found"))
	case r.URL.Path == openapi.PathDocument:
		snap.docs.ServeHTTP(w, r)
	default:
		openapi.ServeUI(w, r)
	}
}
