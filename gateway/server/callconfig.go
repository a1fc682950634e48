package server

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/retry"
	"github.com/acme/shopgate/gateway/upstream"
)

// methodConfigs is the per-method part of every upstream connection's service config, built
// from the route table:
//
//   - each routed RPC: its route timeout and, when it is idempotent, its retry policy
//     (gateway/retry). grpc-go bounds the call with the timeout (all attempts together), sends
//     it upstream as grpc-timeout, and fails the call with DEADLINE_EXCEEDED (504) when it
//     expires; a caller's shorter deadline (Grpc-Timeout) still wins, being on the call's
//     context. The timeout rides on the context grpc-go derives for every call anyway: no
//     context, timer or request copy of the gateway's own per request.
//   - each upstream service: defaultTimeout, for a method no route names.
//
// extra (Options.MethodConfigs) comes last and replaces the entries of the names it lists. The
// result is sorted, so that equal inputs give equal service configs (connsFor compares them).
func methodConfigs(routes []policy.Route, services []string, defaultTimeout time.Duration, retries retry.Config, extra []upstream.MethodConfig) ([]upstream.MethodConfig, error) {
	retried, err := retry.MethodConfigs(routes, retries)
	if err != nil {
		return nil, err
	}
	policies := make(map[upstream.MethodName]*upstream.RetryPolicy, len(retried))
	for _, mc := range retried {
		for _, n := range mc.Name {
			policies[n] = mc.RetryPolicy
		}
	}
	replaced := make(map[upstream.MethodName]bool)
	for _, mc := range extra {
		for _, n := range mc.Name {
			replaced[n] = true
		}
	}
	timeouts := make(map[upstream.MethodName]time.Duration, len(routes))
	for _, rt := range routes {
		n, ok := upstream.ParseMethod(rt.RPC)
		if !ok {
			return nil, fmt.Errorf("route %s %s: malformed RPC name %q", rt.HTTPMethod, rt.Path, rt.RPC)
		}
		timeouts[n] = max(timeouts[n], rt.Policy.Timeout) // one policy per RPC; the longest if not
	}
	out := make([]upstream.MethodConfig, 0, len(timeouts)+len(services)+len(extra))
	for n, d := range timeouts {
		if !replaced[n] {
			out = append(out, upstream.MethodConfig{Name: []upstream.MethodName{n}, Timeout: timeout(d), RetryPolicy: policies[n]})
		}
	}
	for _, svc := range services {
		if n := (upstream.MethodName{Service: svc}); !replaced[n] {
			out = append(out, upstream.MethodConfig{Name: []upstream.MethodName{n}, Timeout: timeout(defaultTimeout)})
		}
	}
	slices.SortFunc(out, func(a, b upstream.MethodConfig) int {
		return cmp.Or(cmp.Compare(a.Name[0].Service, b.Name[0].Service), cmp.Compare(a.Name[0].Method, b.Name[0].Method))
	})
	return append(out, extra...), nil
}

// timeout is d as a service config duration; "" (none) for d <= 0.
func timeout(d time.Duration) string {
	if d <= 0 {
		return ""
	}
	return upstream.Duration(d)
}
