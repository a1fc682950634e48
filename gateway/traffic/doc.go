// Package traffic routes an upstream service's calls between its named backend pools, for
// experiments (a canary beside the stable version): the YAML rules of an upstream (Config),
// compiled into a Selector that picks a pool per request, and the context key under which the
// gateway's per-request state carries the pool chosen.
//
// Rules are evaluated in order and the first that matches wins; a request no rule matches goes
// to the default pool (DefaultPool: the upstream's own addresses). A rule matches on one of: a
// sticky weighted share of callers, a request header's value, the verified caller's subject, one
// of its token's claims, or the client address. A rule may name a fallback pool, used only while
// its pool has no ready instance; without one, a pool that is down answers like any unavailable
// upstream (503) and its calls never spill into another pool.
//
// The package holds no connections and starts nothing: gateway/server dials one
// gateway/upstream connection pair per pool, and sends each call to the pool chosen here.
package traffic
