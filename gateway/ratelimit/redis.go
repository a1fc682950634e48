package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/go-redis/redis_rate/v10"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/sony/gobreaker/v2"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/redisclient"
)

// Redis is the shared Backend: GCRA in Redis (github.com/go-redis/redis_rate), so that every
// gateway replica pointing at one Redis holds one aggregate limit. Each call is one Lua script
// on one key (redis_rate's "rate:" + prefix + key), so it is atomic on a single node, a Redis
// Cluster (the key's slot decides the node; the keys spread over every slot) and the primary
// Sentinel names alike. Each call is bounded by the configured timeout; Redis's own errors are
// returned (the stage decides what they mean).
type Redis struct {
	client  redis.UniversalClient
	limiter *redis_rate.Limiter
	prefix  string
	timeout time.Duration
}

// NewRedis connects lazily to the Redis of cfg (defaults applied by the caller, see
// RedisConfig): no round trip happens here, so the gateway starts while Redis is down.
func NewRedis(cfg RedisConfig) *Redis {
	client := redisclient.New(cfg.Config)
	return &Redis{client: client, limiter: redis_rate.NewLimiter(client), prefix: cfg.KeyPrefix, timeout: cfg.Timeout}
}

// Allow implements Backend.
func (r *Redis) Allow(ctx context.Context, key string, limit policy.RateLimit) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	res, err := r.limiter.Allow(ctx, r.prefix+key, redis_rate.Limit{Rate: limit.Requests, Burst: limit.Burst, Period: limit.Per})
	if err != nil {
		return Result{}, fmt.Errorf("redis rate limit: %w", err)
	}
	out := Result{Allowed: res.Allowed > 0, Remaining: res.Remaining, ResetAfter: res.ResetAfter}
	if !out.Allowed {
		out.RetryAfter = res.RetryAfter
	}
	return out, nil
}

// Ping asks Redis whether it answers (PING; one node of a cluster), bounded by the configured
// timeout.
func (r *Redis) Ping(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	if err := r.client.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// pinger is a primary that can say whether it answers without spending a quota (Redis).
type pinger interface {
	Ping(ctx context.Context) error
}

// failover puts a primary (Redis) before the failure mode: the local limiter (fail-open) or
// ErrUnavailable (fail-closed). It runs the primary through a gobreaker CircuitBreaker that
// trips on the first failure: while open, the primary is skipped; once per probe interval (the
// breaker's Timeout) it turns half-open and lets exactly one request (MaxRequests 1) try the
// primary, whose answer closes it again or reopens it for another interval. So a dead Redis
// costs at most one timeout per interval, and the other requests never wait on it. The change
// to and from the failure mode is logged once each (OnStateChange); a probe that fails again
// changes nothing visible. Execute reports every call's outcome to the breaker, even a panic,
// so a probe can never be left open-ended.
//
// The breaker reads time.Now, not Options.Now (gobreaker has no clock hook): tests move its
// clock with testing/synctest.
type failover struct {
	primary  Backend
	local    Backend // nil for fail-closed
	breaker  *gobreaker.CircuitBreaker[Result]
	errors   prometheus.Counter
	degraded prometheus.Gauge
	logger   *slog.Logger
	mode     string // FailOpen or FailClosed, for the log line

	// lastErr is the most recent failure of the primary, for the outage's log line
	// (OnStateChange is not told the error that tripped the breaker).
	lastErr atomic.Pointer[error]
}

// callerGone carries the error of a primary call that ended because the caller went away: it
// says nothing about the primary, so the breaker ignores it (IsExcluded) and the caller gets
// err back.
type callerGone struct{ err error }

func (e callerGone) Error() string { return e.err.Error() }
func (e callerGone) Unwrap() error { return e.err }

func newFailover(primary, local Backend, interval time.Duration, logger *slog.Logger, errs prometheus.Counter, degraded prometheus.Gauge) *failover {
	f := &failover{primary: primary, local: local, errors: errs, degraded: degraded, logger: logger, mode: FailClosed}
	if local != nil {
		f.mode = FailOpen
	}
	f.breaker = gobreaker.NewCircuitBreaker[Result](gobreaker.Settings{
		Name:          BackendRedis,
		MaxRequests:   1,        // one probe at a time while half-open
		Timeout:       interval, // open for one probe interval, then half-open
		ReadyToTrip:   func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= 1 },
		IsExcluded:    func(err error) bool { return errors.As(err, new(callerGone)) },
		OnStateChange: f.onStateChange,
	})
	degraded.Set(0)
	return f
}

// onStateChange logs the way into the failure mode (closed to open) and the way out (half-open
// to closed), once each, and sets the degraded gauge. A failed probe (half-open to open) and
// the start of a probe (open to half-open) are not news. It runs under the breaker's lock.
func (f *failover) onStateChange(_ string, from, to gobreaker.State) {
	switch {
	case from == gobreaker.StateClosed && to == gobreaker.StateOpen:
		f.degraded.Set(1)
		var err error
		if p := f.lastErr.Load(); p != nil {
			err = *p
		}
		f.logger.Warn("rate limit backend unreachable; failing "+f.mode, "err", err)
	case to == gobreaker.StateClosed:
		f.degraded.Set(0)
		f.logger.Info("rate limit backend recovered")
	}
}

// Allow implements Backend.
func (f *failover) Allow(ctx context.Context, key string, limit policy.RateLimit) (Result, error) {
	res, err := f.try(ctx, func() (Result, error) { return f.primary.Allow(ctx, key, limit) })
	var gone callerGone
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &gone):
		return Result{}, gone.err
	}
	// The primary failed, the breaker is open, or another request is probing: do not wait.
	return f.fallback(ctx, key, limit)
}

// try runs call (a call of the primary) through the breaker: a failure counts and trips it, a
// caller gone away (callerGone) says nothing. While the breaker is open, or another call is
// probing, it returns the breaker's error at once without calling.
func (f *failover) try(ctx context.Context, call func() (Result, error)) (Result, error) {
	return f.breaker.Execute(func() (Result, error) {
		res, err := call()
		switch {
		case err == nil:
			return res, nil
		case ctx.Err() != nil && errors.Is(err, ctx.Err()): // the caller went away: says nothing of Redis
			return Result{}, callerGone{err}
		}
		f.errors.Inc()
		f.lastErr.Store(&err) // before Execute reports it: the trip's log line carries it
		return Result{}, err
	})
}

// serving reports whether a request would be decided: always when failing open (the local
// limiter answers). Failing closed, it pings the primary through the breaker like a request
// would (so an open breaker answers false at once, and once per probe interval the ping is the
// probe that may close it); a primary that cannot ping is judged by the breaker's state alone.
func (f *failover) serving(ctx context.Context) bool {
	if f.local != nil {
		return true
	}
	p, ok := f.primary.(pinger)
	if !ok {
		return f.breaker.State() == gobreaker.StateClosed
	}
	_, err := f.try(ctx, func() (Result, error) { return Result{}, p.Ping(ctx) })
	return err == nil
}

func (f *failover) fallback(ctx context.Context, key string, limit policy.RateLimit) (Result, error) {
	if f.local == nil {
		return Result{}, ErrUnavailable
	}
	return f.local.Allow(ctx, key, limit)
}
