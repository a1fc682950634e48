package server

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/traffic"
	"github.com/acme/shopgate/gateway/upstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// selectors compiles each pooled upstream's rules (gateway/traffic), checking that the RPCs a
// rule names are methods of its service. Services without named pools are left out: their
// calls go to their only pool at no cost.
func (s *Server) selectors(cfg *config.Config) (map[string]*traffic.Selector, error) {
	out := map[string]*traffic.Selector{}
	for name, u := range cfg.Upstreams {
		if len(u.Pools) == 0 {
			continue
		}
		if svc, ok := s.services[name]; ok {
			for i, r := range u.Rules {
				for _, m := range r.Methods {
					if svc.Desc.Methods().ByName(protoreflect.Name(m)) == nil {
						return nil, fmt.Errorf("upstreams.%s.rules[%d].methods: %s has no RPC %q", name, i, name, m)
					}
				}
			}
		}
		sel, err := traffic.New(name, u.Traffic())
		if err != nil {
			return nil, err
		}
		out[name] = sel // nil without rules: everything to the default pool, still counted
	}
	return out, nil
}

// poolStage is the Route stage that chooses the pool of a request to a service with pools, by
// the service's rules (after auth: a rule may read the verified caller), and records it in the
// request's edge State, where the service's poolRouter and the access log read it. With no
// pooled upstream in the configuration the stage is absent from the stack (it returns next).
func poolStage(snap *snapshot) func(http.Handler) http.Handler {
	if len(snap.selectors) == 0 {
		return func(next http.Handler) http.Handler { return next }
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			st := edge.StateFrom(r.Context())
			rt := policy.FromContext(r.Context())
			if st == nil || rt == nil {
				next.ServeHTTP(w, r)
				return
			}
			sel, pooled := snap.selectors[rt.Service]
			if !pooled {
				next.ServeHTTP(w, r)
				return
			}
			id, _ := identity.FromContext(r.Context())
			c := sel.Choose(traffic.Request{
				Method:   rt.RPC[strings.LastIndexByte(rt.RPC, '/')+1:],
				Header:   r.Header,
				Identity: &id,
				ClientIP: func() netip.Addr { return snap.clientIP.ClientIP(r) },
			})
			st.Pool, st.PoolFallback = c.Pool, c.Fallback
			next.ServeHTTP(w, r)
		})
	}
}

// poolRouter is the connection the generated handler of a service with pools calls: it sends
// each call, unary or stream, to the upstream.Conn of the pool the pool stage chose (the
// default pool when none did), or to the rule's fallback pool while the chosen one has no
// READY instance. Everything below (passport, deadline, the pool's own breaker, retries) runs
// on that pool's connection, so retries never leave the pool.
type poolRouter struct {
	pools  map[string]*upstream.Conn // every pool, the default one included
	counts map[string]prometheus.Counter
}

func (s *Server) newPoolRouter(set *upstream.Set, service string, pools []string) *poolRouter {
	pr := &poolRouter{pools: map[string]*upstream.Conn{}, counts: map[string]prometheus.Counter{}}
	for _, p := range pools {
		pr.pools[p] = set.Pool(service, p)
		pr.counts[p] = s.metrics.PoolCounter(service, p)
	}
	return pr
}

// pick returns the connection of the call's pool, and counts the call there.
func (pr *poolRouter) pick(ctx context.Context, stream bool) *upstream.Conn {
	pool, fallback := traffic.DefaultPool, ""
	st := edge.StateFrom(ctx)
	if st != nil && st.Pool != "" {
		pool, fallback = st.Pool, st.PoolFallback
	}
	c := pr.pools[pool]
	if c == nil { // a pool the configuration no longer has (validated: not expected)
		pool, c = traffic.DefaultPool, pr.pools[traffic.DefaultPool]
	}
	if fallback != "" && !c.Ready(stream) {
		if f := pr.pools[fallback]; f != nil {
			pool, c = fallback, f
		}
	}
	if st != nil {
		st.Pool = pool // the access log names the pool that served
	}
	pr.counts[pool].Inc()
	return c
}

// Invoke sends a unary call to the chosen pool.
func (pr *poolRouter) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return pr.pick(ctx, false).Invoke(ctx, method, args, reply, opts...)
}

// NewStream opens a stream on the chosen pool.
func (pr *poolRouter) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return pr.pick(ctx, true).NewStream(ctx, desc, method, opts...)
}
