package ratelimit

import (
	"context"
	"errors"
	"time"

	"github.com/acme/shopgate/gateway/policy"
)

// Backend is the one-method limiter interface behind the stage (the architecture's `Limiter`:
// the name is taken by the stage itself, whose type the gateway's factory is wired against).
// Memory and Redis implement it.
type Backend interface {
	// Allow takes one request for key under limit and says whether it may pass. The limit is
	// enabled and resolved: Requests and Per positive, Burst already defaulted by the route
	// table (Requests when unset), so Burst >= 1; a backend does not default it again. An
	// error means the backend could not decide.
	Allow(ctx context.Context, key string, limit policy.RateLimit) (Result, error)
}

// Result is a backend's decision.
type Result struct {
	// Allowed is true when the request may pass.
	Allowed bool
	// Remaining is how many more requests would pass right now.
	Remaining int
	// ResetAfter is the time until the key is back to its full burst.
	ResetAfter time.Duration
	// RetryAfter is the time until the next request would pass; 0 when Allowed.
	RetryAfter time.Duration
}

// ErrUnavailable is returned while a fail-closed backend cannot decide.
var ErrUnavailable = errors.New("rate limiter unavailable")
