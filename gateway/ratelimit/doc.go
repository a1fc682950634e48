// Package ratelimit limits requests per caller and RPC.
//
// The stage (Limiter.Middleware) runs after route matching and authentication: it reads the
// route (policy.FromContext) and its limit, Policy.RateLimit{Requests, Per, Burst} (the route
// table has already resolved it: the gateway's default limit when the route has none, Burst =
// Requests when unset; a zero limit means none), and the caller:
//
//   - a verified subject (identity.FromContext): key "<rpc>|sub:<subject>";
//   - an API key's identity: key "<rpc>|key:<subject>";
//   - an anonymous caller: key "<rpc>|ip:<client address>", the address from gateway/clientip
//     (X-Forwarded-For only through trusted proxies).
//
// It takes one request from that quota before the body is read or decoded. Every limited
// response, allowed or not, carries the IETF draft header (draft-ietf-httpapi-ratelimit-headers)
//
//	RateLimit: "default";r=42;t=17              r remaining now, t seconds until the quota is full
//
// and a refused one its policy too:
//
//	RateLimit-Policy: "default";q=100;w=60      quota q requests per window w seconds
//
// The policy is static per route (and in /openapi.json as x-shopgate-rate-limit): sent on every
// answer it would cost each client one more header to read per call for nothing new.
//
// and a refused request gets 429 RESOURCE_EXHAUSTED as a google.rpc.Status carrying a
// google.rpc.RetryInfo, with `Retry-After` in whole seconds, rounded up.
//
// # Backends
//
// Both backends implement one Backend interface and the same algorithm, GCRA (a token bucket
// without a timer: Requests per Per, up to Burst at once):
//
//   - Memory: in-process, 64 shards, at most MaxKeys keys, least recently used evicted; no
//     goroutine. A million distinct callers cost what MaxKeys callers cost (~21 MB by default).
//   - Redis: github.com/go-redis/redis_rate (GCRA in a Lua script); replicas sharing one Redis
//     hold one aggregate limit. Dial, read, write and each call are bounded by redis.timeout
//     (100ms). While Redis fails, failure_mode "open" answers from the in-memory backend and
//     "closed" answers 503 UNAVAILABLE ("rate limiter unavailable"); never 500, never a hang. A
//     circuit breaker (github.com/sony/gobreaker) opens on the first failure; only one request
//     per probe_interval tries Redis again, the others do not wait on it; the change to and from
//     the failure mode is logged once each. A caller that goes away mid-call counts for nothing. While failing open, each replica
//     enforces the limit alone, so the aggregate may reach replicas x limit until Redis is back.
//
// Under a flood of distinct keys (an address spray), the in-memory backend evicts the least
// recently used keys: an evicted caller starts again with a full burst. Memory stays bounded;
// the limit of a caller idle for longer than the flood's churn is what gives.
//
// # Reload
//
// Limits are read from the route at each request, so a reloaded route table applies at once.
// To keep the in-memory quotas across a reload, build the new stage with
// Options.Local = old.Local(); the Memory is not owned by the stage. Redis quotas live in Redis.
//
// # Config example (YAML section `rate_limiting`)
//
//	rate_limiting:
//	  backend: redis            # "memory" (default) or "redis"
//	  policy_name: default      # name in the RateLimit headers; default "default"
//	  max_keys: 100000          # in-memory keys (also Redis's fail-open fallback); default 100000
//	  redis:
//	    addr: 127.0.0.1:6379    # default
//	    db: 0                   # default
//	    key_prefix: "shopgate:rl:"  # default; redis_rate adds "rate:" before it
//	    timeout: 100ms          # dial/read/write and per call; default 100ms
//	    failure_mode: open      # "open" (default) or "closed"
//	    probe_interval: 1s      # default 1s
//	    pool_size: 0            # default: go-redis's, 10 per GOMAXPROCS
//
// # Metrics (when Options.Registerer is set)
//
//	gateway_ratelimit_requests_total{rpc, result="allowed"|"limited"|"unavailable"}
//	gateway_ratelimit_backend_errors_total{backend}
//	gateway_ratelimit_backend_degraded{backend}     1 while the failure mode applies
package ratelimit
