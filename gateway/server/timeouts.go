package server

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/upstream"
)

// timeoutConfigs returns the service config entry of each RPC of routes with its route timeout
// (the longest, should two bindings of one RPC differ), sorted by name. An RPC whose route has
// no timeout gets no entry. They are the pipeline's "timeout" stage: grpc-go applies them below
// the client stages, and gateway/deadline (above the breaker) tells whose deadline binds.
func timeoutConfigs(routes []*policy.Route) ([]upstream.MethodConfig, error) {
	timeouts := make(map[upstream.MethodName]time.Duration, len(routes))
	for _, rt := range routes {
		n, ok := upstream.ParseMethod(rt.RPC)
		if !ok {
			return nil, fmt.Errorf("route timeouts: route %s %s: malformed RPC name %q", rt.HTTPMethod, rt.Path, rt.RPC)
		}
		timeouts[n] = max(timeouts[n], rt.Policy.Timeout)
	}
	out := make([]upstream.MethodConfig, 0, len(timeouts))
	for n, d := range timeouts {
		if d > 0 {
			out = append(out, upstream.MethodConfig{Name: []upstream.MethodName{n}, Timeout: upstream.Duration(d)})
		}
	}
	slices.SortFunc(out, func(a, b upstream.MethodConfig) int {
		return cmp.Or(cmp.Compare(a.Name[0].Service, b.Name[0].Service), cmp.Compare(a.Name[0].Method, b.Name[0].Method))
	})
	return out, nil
}
