package ipfilter

import (
	"fmt"
	"net/http"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/gateway/httperror"
	"github.com/acme/shopgate/gateway/metrics"
	"github.com/acme/shopgate/gateway/policy"
)

// Filter is the ipfilter stage. It is immutable and safe for concurrent use; a reload builds a
// new one.
type Filter struct {
	global   rules
	resolver *clientip.Resolver
	denied   *prometheus.CounterVec
	// deniedGlobal and deniedRoute are the two children of denied, resolved once.
	deniedGlobal, deniedRoute prometheus.Counter
}

// errDenied is the one error a refused client sees; it names no rule and no address.
var errDenied = status.New(codes.PermissionDenied, "client address not allowed")

type rules struct {
	allow, deny []netip.Prefix
}

// admits applies deny-wins-then-allow to addr.
func (r rules) admits(addr netip.Addr) bool {
	if len(r.allow) == 0 && len(r.deny) == 0 {
		return true
	}
	if !addr.IsValid() {
		return len(r.allow) == 0
	}
	if clientip.Contains(r.deny, addr) {
		return false
	}
	return len(r.allow) == 0 || clientip.Contains(r.allow, addr)
}

// New validates cfg (every invalid entry of both lists is reported at once) and builds the
// stage. Its errors start with "creating ip filter: ".
func New(cfg Config, opts Options) (*Filter, error) {
	global, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("creating ip filter: %w", err)
	}
	f := &Filter{global: global, resolver: opts.Resolver}
	if f.resolver == nil {
		if f.resolver, err = clientip.New(clientip.Config{}); err != nil {
			return nil, fmt.Errorf("creating ip filter: %w", err)
		}
	}
	denied := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_ip_denied_total",
		Help: "Requests refused by the IP allow/deny rules, by scope (global or route).",
	}, []string{"scope"})
	if opts.Registerer != nil {
		if denied, err = metrics.RegisterOrReuse(opts.Registerer, denied); err != nil {
			return nil, fmt.Errorf("creating ip filter: %w", err)
		}
	}
	f.denied = denied
	f.deniedGlobal = denied.WithLabelValues("global")
	f.deniedRoute = denied.WithLabelValues("route")
	return f, nil
}

// Middleware wraps next with the global rules (Config). It belongs at the edge, before routing.
// With no global rules it returns next itself: no cost per request.
func (s *Filter) Middleware(next http.Handler) http.Handler {
	if len(s.global.allow) == 0 && len(s.global.deny) == 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.global.admits(s.resolver.ClientIP(r)) {
			s.deniedGlobal.Inc()
			httperror.Refuse(w, r, errDenied)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// RouteMiddleware wraps next with the rules of the matched route (Policy.AllowCIDRs and
// Policy.DenyCIDRs, read from policy.FromContext at each request, so a reloaded route table
// applies at once). It belongs after route matching; a request with no route passes.
func (s *Filter) RouteMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := policy.FromContext(r.Context())
		if rt != nil && (len(rt.Policy.AllowCIDRs) > 0 || len(rt.Policy.DenyCIDRs) > 0) {
			route := rules{allow: rt.Policy.AllowCIDRs, deny: rt.Policy.DenyCIDRs}
			if !route.admits(s.resolver.ClientIP(r)) {
				s.deniedRoute.Inc()
				httperror.Refuse(w, r, errDenied)
				return
			}
		}
		next.ServeHTTP(w, r)
	})
}
