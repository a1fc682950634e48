// Package breaker keeps one circuit breaker (github.com/sony/gobreaker/v2) per upstream service,
// or per RPC, and applies it as gRPC client interceptors.
//
// Closed, a breaker counts the calls' outcomes. Failures are UNAVAILABLE, DEADLINE_EXCEEDED,
// INTERNAL, UNKNOWN and DATA_LOSS; a call the caller cancelled, bounded by the caller's own
// shorter deadline, or that ran out of time queued for a stream slot on a READY connection
// (nothing reached the upstream) is not counted at all, and client
// errors (INVALID_ARGUMENT, NOT_FOUND, PERMISSION_DENIED, ...) count as successes: the upstream
// answered. After ConsecutiveFailures failures in a row, or (with FailureRatio) when that share
// of at least MinRequests calls in Interval failed, it opens: every call fails at once with the
// gRPC status UNAVAILABLE "circuit open for shop.order.v1.OrderService" without touching the
// upstream (the gateway's error handler serves the route's fallback, if any, for UNAVAILABLE).
// After OpenTimeout it turns half-open and lets HalfOpenMaxRequests probes through: that many
// successes close it, one failure opens it again. Breakers are independent: one service's open
// breaker never slows another's calls. Streaming calls count whether the stream opened.
//
// State is visible three ways: the gauge gateway_breaker_state{breaker} (0 closed, 1 half-open,
// 2 open), States() for /readyz, and one log line per change. Calls failed by an open breaker
// are counted in gateway_breaker_rejected_total{breaker}.
//
// Breakers are long-lived: a reload calls Update(cfg). Same settings keep every breaker's state;
// new settings start fresh breakers (closed).
//
// Config example (YAML section `breaker`):
//
//	breaker:
//	  scope: rpc                  # default rpc: one breaker per RPC; service: one per service
//	  consecutive_failures: 5     # default 5
//	  failure_ratio: 0.5          # default 0 (off)
//	  min_requests: 20            # default 20, for failure_ratio
//	  interval: 60s               # default 60s: closed-state counting window
//	  open_timeout: 10s           # default 10s
//	  half_open_max_requests: 1   # default 1
package breaker
