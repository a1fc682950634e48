package abuse

import (
	"context"
	"fmt"
	"log/slog"
	"math"
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
	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/httperror"
)

// Detector is the abuse stage: it counts the 401 answers per client address and refuses a
// blocked address with 429 on every route, before routing.
type Detector struct {
	disabled bool
	limits   Limits
	store    Store
	local    *Memory
	redis    *Redis // owned; closed by Close
	resolver *clientip.Resolver
	now      func() time.Time
	timeout  time.Duration // bounds recording a failure after the client went away
	logger   *slog.Logger
	metrics  *metrics

	closeOnce sync.Once
	closeErr  error
}

// New validates cfg and builds the detector. With the Redis backend no round trip happens
// here: the gateway starts while Redis is down.
func New(cfg Config, opts Options) (*Detector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating abuse detector: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Resolver == nil {
		if opts.Resolver, err = clientip.New(clientip.Config{}); err != nil {
			return nil, fmt.Errorf("creating abuse detector: %w", err)
		}
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("creating abuse detector: %w", err)
	}
	d := &Detector{
		disabled: cfg.Disabled,
		limits:   Limits{MaxFailures: cfg.MaxFailures, Window: cfg.Window, BlockFor: cfg.BlockFor},
		local:    opts.Local,
		resolver: opts.Resolver,
		now:      opts.Now,
		timeout:  time.Second,
		logger:   opts.Logger.With("component", "abuse"),
		metrics:  m,
	}
	if d.local == nil {
		d.local = NewMemory(cfg.MaxKeys)
	}
	d.store = d.local
	if cfg.Backend == BackendRedis && !cfg.Disabled {
		if cfg.Redis.Password == "" {
			cfg.Redis.Password = opts.RedisPassword
		}
		d.redis = NewRedis(cfg.Redis)
		d.timeout = cfg.Redis.Timeout
		s := &shared{
			redis:    d.redis,
			local:    d.local,
			cache:    newLRU[verdict](cfg.MaxKeys),
			sync:     cfg.Redis.SyncInterval,
			probe:    cfg.Redis.ProbeInterval,
			logger:   d.logger.With("backend", BackendRedis, "redis", cfg.Redis.Where()),
			errors:   m.backendErrors.WithLabelValues(BackendRedis),
			degraded: m.degraded.WithLabelValues(BackendRedis),
		}
		s.degraded.Set(0)
		d.store = s
	}
	return d, nil
}

// Local returns the in-memory store, to hand to the next detector on a reload (Options.Local)
// so that failures and blocks survive it.
func (d *Detector) Local() *Memory { return d.local }

// Limits returns the thresholds in force, defaults applied.
func (d *Detector) Limits() Limits { return d.limits }

// Close closes the Redis connections, if the detector has any. Safe to call twice.
func (d *Detector) Close() error {
	d.closeOnce.Do(func() {
		if d.redis != nil {
			d.closeErr = d.redis.Close()
		}
	})
	return d.closeErr
}

// statusBlocked is what a blocked address is told.
var statusBlocked = status.New(codes.ResourceExhausted, "too many failed authentications from this address")

// Middleware wraps next with the stage. A blocked client address gets 429 RESOURCE_EXHAUSTED
// with Retry-After (whole seconds, rounded up) and a google.rpc.RetryInfo, and next is not
// called. Otherwise next runs, and a 401 answer counts one failure for the address; the
// failure beyond Limits.MaxFailures within Limits.Window blocks it for Limits.BlockFor, with
// one Warn log line and gateway_abuse_blocks_total. A request whose address is unknown (not an
// IP, e.g. in-process) passes untouched. A disabled detector returns next itself.
//
// The stage reads the answer's status from the edge State (edge.StateFrom); without one it
// creates it (edge.Ensure).
func (d *Detector) Middleware(next http.Handler) http.Handler {
	if d.disabled {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr := d.resolver.ClientIP(r)
		if !addr.IsValid() {
			next.ServeHTTP(w, r)
			return
		}
		now := d.now()
		if b, blocked, _ := d.store.Blocked(r.Context(), addr, now); blocked {
			d.metrics.refused.Inc()
			retry := int64(math.Ceil(b.Until.Sub(now).Seconds())) // at least 1: Until is after now
			w.Header().Set("Retry-After", strconv.FormatInt(retry, 10))
			httperror.Refuse(w, r, httperror.WithDetails(statusBlocked, &errdetails.RetryInfo{
				RetryDelay: durationpb.New(time.Duration(retry) * time.Second),
			}))
			return
		}
		st, w, r := edge.Ensure(w, r)
		next.ServeHTTP(w, r)
		if st.Status() == http.StatusUnauthorized {
			d.fail(r.Context(), addr)
		}
	})
}

// fail counts one failed authentication of addr. It is recorded even when the client has gone
// away (an attacker must not escape the count by hanging up), within the backend's timeout.
func (d *Detector) fail(ctx context.Context, addr netip.Addr) {
	d.metrics.failures.Inc()
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), d.timeout)
	defer cancel()
	now := d.now()
	b, created, err := d.store.Fail(ctx, addr, now, d.limits)
	if err != nil || !created {
		return
	}
	d.metrics.blocks.Inc()
	d.logger.Warn("client address blocked for failed authentications",
		"addr", addr.String(), "failures", b.Failures, "window", d.limits.Window.String(),
		"until", b.Until.UTC().Format(time.RFC3339), "block_for", d.limits.BlockFor.String())
}

// List returns the blocks in force, for the operator.
func (d *Detector) List(ctx context.Context) ([]Block, error) {
	return d.store.List(ctx, d.now())
}

// Lift ends addr's block (and forgets its failures) at once on this replica, and on the others
// within redis.sync_interval. It returns ErrNotBlocked when addr was not blocked.
func (d *Detector) Lift(ctx context.Context, addr netip.Addr) error {
	lifted, err := d.store.Lift(ctx, addr.Unmap().WithZone(""), d.now())
	if err != nil {
		return err
	}
	if !lifted {
		return ErrNotBlocked
	}
	d.logger.Info("client address block lifted", "addr", addr.String())
	return nil
}
