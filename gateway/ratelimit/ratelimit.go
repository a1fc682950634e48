package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/gateway/httperror"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
)

// Limiter is the ratelimit stage: it runs after route matching and authentication, takes one
// request from the caller's quota for the route, sets the RateLimit headers and refuses a
// request over the quota with 429 before its body is read.
type Limiter struct {
	backend    Backend
	local      *Memory
	redis      *Redis // owned; closed by Close
	resolver   *clientip.Resolver
	policyName string
	logger     *slog.Logger
	metrics    *metrics

	policyMu    sync.RWMutex
	policyCache map[policy.RateLimit][]string // RateLimit-Policy values, one per distinct limit

	closeOnce sync.Once
	closeErr  error
}

// maxPolicyCache bounds policyCache; limits come from a finite route table, but stay safe.
const maxPolicyCache = 4096

// New validates cfg (every invalid value is reported at once) and builds the stage. It does
// not reach Redis: the gateway starts while Redis is down. Its errors start with "creating rate
// limiter: ".
func New(cfg Config, opts Options) (*Limiter, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating rate limiter: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Resolver == nil {
		if opts.Resolver, err = clientip.New(clientip.Config{}); err != nil {
			return nil, fmt.Errorf("creating rate limiter: %w", err)
		}
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("creating rate limiter: %w", err)
	}
	l := &Limiter{
		local:       opts.Local,
		resolver:    opts.Resolver,
		policyName:  cfg.PolicyName,
		logger:      opts.Logger.With("component", "ratelimit"),
		metrics:     m,
		policyCache: make(map[policy.RateLimit][]string),
	}
	if l.local == nil {
		l.local = NewMemory(cfg.MaxKeys, opts.Now)
	}
	switch {
	case opts.Backend != nil:
		l.backend = opts.Backend
	case cfg.Backend == BackendRedis:
		l.redis = NewRedis(cfg.Redis)
		var local Backend // fail-closed: none
		if cfg.Redis.FailureMode == FailOpen {
			local = l.local
		}
		l.backend = newFailover(l.redis, local, cfg.Redis.ProbeInterval,
			l.logger.With("backend", BackendRedis, "redis", cfg.Redis.Where()),
			m.backendErrors.WithLabelValues(BackendRedis), m.degraded.WithLabelValues(BackendRedis))
	default:
		l.backend = l.local
	}
	return l, nil
}

// Local returns the in-memory backend, to hand to the next stage on a reload (Options.Local)
// so that callers keep their quotas.
func (s *Limiter) Local() *Memory { return s.local }

// Serving reports whether the stage can decide limited requests, for /readyz: always with the
// in-memory backend, a custom Options.Backend, or Redis failing open (the in-memory limiter
// answers while Redis is away). With Redis failing closed, every limited request is refused
// with 503 while Redis is away, so Serving asks Redis (a PING bounded by redis.timeout) through
// the circuit breaker the requests use: while the breaker is open it answers false at once, and
// once per probe interval the PING is the probe that may close it. So a gateway that readiness
// took out of rotation, and that therefore gets no requests to probe with, still finds Redis
// again; and a Redis that went away while no request came trips the breaker here first.
func (s *Limiter) Serving(ctx context.Context) bool {
	f, ok := s.backend.(*failover)
	if !ok {
		return true
	}
	return f.serving(ctx)
}

// Close closes the Redis connections, if any. Safe to call twice.
func (s *Limiter) Close() error {
	s.closeOnce.Do(func() {
		if s.redis != nil {
			s.closeErr = s.redis.Close()
		}
	})
	return s.closeErr
}

// The errors a client sees.
var (
	statusLimited     = status.New(codes.ResourceExhausted, "rate limit exceeded")
	statusUnavailable = status.New(codes.Unavailable, "rate limiter unavailable")
)

// Middleware wraps next with the stage. A request with no route, or whose route has no limit,
// passes untouched.
func (s *Limiter) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := policy.FromContext(r.Context())
		if rt == nil || !rt.Policy.RateLimit.Enabled() {
			next.ServeHTTP(w, r)
			return
		}
		limit := rt.Policy.RateLimit // Burst resolved by the route table
		res, err := s.backend.Allow(r.Context(), s.key(r, rt.RPC), limit)
		m := s.metrics.forRPC(rt.RPC)
		if err != nil {
			m.unavailable.Inc()
			if !errors.Is(err, ErrUnavailable) && !errors.Is(err, context.Canceled) {
				s.logger.Debug("rate limit backend error", "err", err)
			}
			httperror.Refuse(w, r, statusUnavailable)
			return
		}
		// RateLimit (what is left, and when it resets) on every answer; RateLimit-Policy (the
		// quota, static per route and in /openapi.json as x-shopgate-rate-limit) on a 429
		// only, so that an allowed answer carries one header, not two.
		h := w.Header()
		h["Ratelimit"] = []string{s.stateHeader(res)}
		if !res.Allowed {
			h["Ratelimit-Policy"] = s.policyHeader(limit)
			m.limited.Inc()
			retry := ceilSeconds(res.RetryAfter)
			h["Retry-After"] = []string{strconv.FormatInt(retry, 10)}
			httperror.Refuse(w, r, httperror.WithDetails(statusLimited, &errdetails.RetryInfo{
				RetryDelay: durationpb.New(time.Duration(retry) * time.Second),
			}))
			return
		}
		m.allowed.Inc()
		next.ServeHTTP(w, r)
	})
}

// key is "<rpc>|sub:<subject>" for a caller with a token, "<rpc>|key:<subject>" for an API
// key, and "<rpc>|ip:<address>" for an anonymous one. It is built with one allocation.
func (s *Limiter) key(r *http.Request, rpc string) string {
	var buf [192]byte
	b := append(buf[:0], rpc...)
	if id, ok := identity.FromContext(r.Context()); ok && !id.Anonymous() {
		if id.Method == identity.MethodAPIKey {
			b = append(b, "|key:"...)
		} else {
			b = append(b, "|sub:"...)
		}
		b = append(b, id.Subject...)
		return string(b)
	}
	b = append(b, "|ip:"...)
	addr := s.resolver.ClientIP(r)
	if addr == (netip.Addr{}) {
		b = append(b, "unknown"...)
	} else {
		b = addr.AppendTo(b)
	}
	return string(b)
}

// policyHeader returns `"<name>";q=<requests>;w=<seconds>`, formatted once per distinct limit.
func (s *Limiter) policyHeader(limit policy.RateLimit) []string {
	s.policyMu.RLock()
	v, ok := s.policyCache[limit]
	s.policyMu.RUnlock()
	if ok {
		return v
	}
	b := make([]byte, 0, 48)
	b = strconv.AppendQuote(b, s.policyName)
	b = append(b, ";q="...)
	b = strconv.AppendInt(b, int64(limit.Requests), 10)
	b = append(b, ";w="...)
	b = strconv.AppendInt(b, ceilSeconds(limit.Per), 10)
	v = []string{string(b)}
	s.policyMu.Lock()
	if len(s.policyCache) < maxPolicyCache {
		s.policyCache[limit] = v
	}
	s.policyMu.Unlock()
	return v
}

// stateHeader returns `"<name>";r=<remaining>;t=<seconds until full>`.
func (s *Limiter) stateHeader(res Result) string {
	var buf [64]byte
	b := strconv.AppendQuote(buf[:0], s.policyName)
	b = append(b, ";r="...)
	b = strconv.AppendInt(b, int64(max(res.Remaining, 0)), 10)
	b = append(b, ";t="...)
	b = strconv.AppendInt(b, ceilSeconds(res.ResetAfter), 10)
	return string(b)
}

// ceilSeconds rounds d up to whole seconds, at least 1 for a positive d and 0 otherwise.
func ceilSeconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}
