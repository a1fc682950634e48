// Package retry turns the route table into gRPC retry policies: the per-method
// `retryPolicy` of the service config for the RPCs declared idempotent (Policy.Idempotent), and
// never for the others, plus a `retryThrottling` token bucket so that retries cannot multiply
// the load on an upstream that is already failing.
//
// grpc-go applies them below the client interceptors (so a call the circuit breaker sees once
// may be several attempts on the wire): an attempt that failed with a retryable code
// (UNAVAILABLE by default) is retried after a random backoff in [0, min(InitialBackoff *
// BackoffMultiplier^(n-1), MaxBackoff)) (the jitter is grpc-go's), at most MaxAttempts attempts
// in all, and only while the connection's throttling bucket holds more than MaxTokens/2 tokens
// (each failed attempt takes one, each success gives back TokenRatio). An attempt is never
// retried once the upstream has sent response headers, and a deadline bounds all attempts
// together.
//
// Use: New(cfg) applies the defaults and validates once; its MethodConfigs(routes) and
// Throttling() feed gateway/upstream.Options (MethodConfigs, RetryThrottling). The route
// timeout is not part of the service config: gateway/deadline sets it above the circuit
// breaker, and it bounds all attempts together.
//
// Config example (YAML section `retry`):
//
//	retry:
//	  max_attempts: 3             # including the first; 1 turns retries off; at most 5. Default 3
//	  initial_backoff: 100ms      # default 100ms
//	  max_backoff: 1s             # default 1s
//	  backoff_multiplier: 2       # default 2
//	  retryable_status_codes: [UNAVAILABLE]   # default [UNAVAILABLE]
//	  throttling:
//	    max_tokens: 10            # default 10, (0, 1000]
//	    token_ratio: 0.1          # default 0.1, (0, 1]
package retry
