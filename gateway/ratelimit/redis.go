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

	"github.com/acme/shopgate/gateway/policy"
)

// Redis is the shared Backend: GCRA in Redis (github.com/go-redis/redis_rate), so that every
// gateway replica pointing at one Redis holds one aggregate limit. Each call is bounded by the
// configured timeout; Redis's own errors are returned (the stage decides what they mean).
type Redis struct {
	client  *redis.Client
	limiter *redis_rate.Limiter
	prefix  string
	timeout time.Duration
}

// NewRedis connects lazily to the Redis of cfg (defaults applied by the caller, see
// RedisConfig): no round trip happens here, so the gateway starts while Redis is down.
func NewRedis(cfg RedisConfig) *Redis {
	client := redis.NewClient(&redis.Options{
		Addr:                  cfg.Addr,
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		DialTimeout:           cfg.Timeout,
		ReadTimeout:           cfg.Timeout,
		WriteTimeout:          cfg.Timeout,
		PoolTimeout:           cfg.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // a retry would double the time a dead Redis costs a request
		DialerRetries:         1,  // go-redis's default, 5 dials 100ms apart, would hold a request 0.5s
		PoolSize:              cfg.PoolSize,
		DisableIdentity:       true, // no CLIENT SETINFO round trip on every new connection
	})
	return &Redis{client: client, limiter: redis_rate.NewLimiter(client), prefix: cfg.KeyPrefix, timeout: cfg.Timeout}
}

// Allow implements Backend.
func (r *Redis) Allow(ctx context.Context, key string, limit policy.RateLimit) (Result, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	burst := limit.Burst
	if burst <= 0 {
		burst = limit.Requests
	}
	res, err := r.limiter.Allow(ctx, r.prefix+key, redis_rate.Limit{Rate: limit.Requests, Burst: burst, Period: limit.Per})
	if err != nil {
		return Result{}, fmt.Errorf("redis rate limit: %w", err)
	}
	out := Result{Allowed: res.Allowed > 0, Remaining: res.Remaining, ResetAfter: res.ResetAfter}
	if !out.Allowed {
		out.RetryAfter = res.RetryAfter
	}
	return out, nil
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

// failover puts a primary (Redis) before the failure mode: the local limiter (fail-open) or
// ErrUnavailable (fail-closed). After a failure, the primary is skipped, and only one request
// per probe interval tries it again, so a dead Redis costs at most one timeout per interval; the
// transitions are logged once each.
type failover struct {
	primary  Backend
	local    Backend // nil for fail-closed
	interval time.Duration
	now      func() time.Time
	logger   *slog.Logger
	errors   prometheus.Counter
	degraded prometheus.Gauge

	down      atomic.Bool
	nextProbe atomic.Int64 // ns since epoch; while down, the primary is skipped before it
}

// Allow implements Backend.
func (f *failover) Allow(ctx context.Context, key string, limit policy.RateLimit) (Result, error) {
	if f.down.Load() {
		next := f.nextProbe.Load()
		now := f.now().UnixNano()
		if now < next || !f.nextProbe.CompareAndSwap(next, now+int64(f.interval)) {
			return f.fallback(ctx, key, limit)
		}
	}
	res, err := f.primary.Allow(ctx, key, limit)
	if err == nil {
		if f.down.Load() && f.down.CompareAndSwap(true, false) {
			f.degraded.Set(0)
			f.logger.Info("rate limit backend recovered")
		}
		return res, nil
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) { // the caller went away: says nothing of Redis
		return Result{}, err
	}
	f.errors.Inc()
	if !f.down.Load() {
		f.nextProbe.Store(f.now().UnixNano() + int64(f.interval))
		if f.down.CompareAndSwap(false, true) {
			f.degraded.Set(1)
			mode := FailClosed
			if f.local != nil {
				mode = FailOpen
			}
			f.logger.Warn("rate limit backend unreachable; failing "+mode, "err", err)
		}
	}
	return f.fallback(ctx, key, limit)
}

func (f *failover) fallback(ctx context.Context, key string, limit policy.RateLimit) (Result, error) {
	if f.local == nil {
		return Result{}, ErrUnavailable
	}
	return f.local.Allow(ctx, key, limit)
}

// RedisLogger adapts a slog.Logger to go-redis's process-wide logger, whose default writes
// plain lines to stderr (a failed dial, at most one per probe interval while Redis is down).
// go-redis's logger is global, so this package never installs it; cmd/ does, once:
//
//	redis.SetLogger(ratelimit.RedisLogger{Logger: logger})
//
// Messages are logged at Debug level: the stage's own Warn line already reports the outage.
type RedisLogger struct {
	// Logger receives the messages. Default (nil): slog.Default().
	Logger *slog.Logger
}

// Printf implements go-redis's internal.Logging.
func (l RedisLogger) Printf(ctx context.Context, format string, v ...any) {
	logger := l.Logger
	if logger == nil {
		logger = slog.Default()
	}
	if logger.Enabled(ctx, slog.LevelDebug) {
		logger.DebugContext(ctx, fmt.Sprintf(format, v...), "component", "go-redis")
	}
}
