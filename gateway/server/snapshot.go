package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync/atomic"

	"github.com/acme/shopgate/gateway/abuse"
	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/cors"
	"github.com/acme/shopgate/gateway/httpcache"
	"github.com/acme/shopgate/gateway/ipfilter"
	"github.com/acme/shopgate/gateway/openapi"
	"github.com/acme/shopgate/gateway/pipeline"
	"github.com/acme/shopgate/gateway/ratelimit"
	"github.com/acme/shopgate/gateway/retry"
	"github.com/acme/shopgate/gateway/routes"
	"github.com/acme/shopgate/gateway/sse"
	"github.com/acme/shopgate/gateway/streamlimit"
	"github.com/acme/shopgate/gateway/traffic"
	"github.com/acme/shopgate/gateway/upstream"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// snapshot is everything a reload replaces: the route table, the policy stages built from the
// configuration, and the handler stack wired over them. It is immutable once built and
// reference-counted: the server holds one reference, each request in flight another; the last
// release closes the stages.
type snapshot struct {
	cfg      *config.Config
	table    *routes.Table
	docs     *openapi.Document // the API reference of table's served routes; nil when docs are off
	clientIP *clientip.Resolver
	auth     *auth.Authenticator
	limiter  *ratelimit.Limiter
	streams  *streamlimit.Limiter
	sse      *sse.Stage
	cache    *httpcache.Stage
	ipFilter *ipfilter.Filter
	cors     *cors.CORS
	abuse    *abuse.Detector
	retry    *retry.Stage
	// selectors choose the pool of each upstream with named pools (gateway/traffic); a
	// service missing here has only its default pool.
	selectors map[string]*traffic.Selector
	pipeline  pipeline.Pipeline // the stages, in order (declare)
	conns     *sharedConns      // the upstream connections, with this pipeline's client stages
	mux       *runtime.ServeMux
	handler   http.Handler // the whole stack, edge first
	logger    *slog.Logger

	refs    atomic.Int64
	onClose []func() error
}

// newSnapshot builds a snapshot from cfg: the route table, the policy stages, the pipeline
// declared over them, the upstream connections and the handler. On error everything built so
// far is closed.
func (s *Server) newSnapshot(cfg *config.Config) (_ *snapshot, err error) {
	snap := &snapshot{cfg: cfg, logger: s.logger}
	snap.refs.Store(1)
	defer func() {
		if err != nil {
			_ = snap.close()
		}
	}()
	if snap.table, err = routes.Build(cfg, s.services.descriptors()); err != nil {
		return nil, fmt.Errorf("building routes: %w", err)
	}
	if snap.docs, err = s.buildReference(cfg, snap.table); err != nil {
		return nil, err
	}
	if snap.clientIP, err = clientip.New(cfg.ClientIP); err != nil {
		return nil, err
	}
	if snap.auth, err = auth.New(cfg.Auth, auth.Options{Logger: s.logger, Registerer: s.reg}); err != nil {
		return nil, err
	}
	snap.onClose = append(snap.onClose, snap.auth.Close)
	rlOpts := ratelimit.Options{Logger: s.logger, Registerer: s.reg, Resolver: snap.clientIP} // the client behind trusted proxies
	if prev := s.cur.Load(); prev != nil && prev.cfg.RateLimiting.MaxKeys == cfg.RateLimiting.MaxKeys {
		rlOpts.Local = prev.limiter.Local() // a reload keeps every caller's in-memory quota
	}
	if snap.limiter, err = ratelimit.New(cfg.RateLimiting, rlOpts); err != nil {
		return nil, err
	}
	snap.onClose = append(snap.onClose, snap.limiter.Close)
	slOpts := streamlimit.Options{Registerer: s.reg, Resolver: snap.clientIP}
	if prev := s.cur.Load(); prev != nil {
		slOpts.Counts = prev.streams.Counts() // a reload keeps every caller's open streams
	}
	if snap.streams, err = streamlimit.New(cfg.Streams, slOpts); err != nil {
		return nil, err
	}
	if snap.sse, err = sse.New(cfg.SSE, sse.Options{NewTicker: s.sseTicker}); err != nil {
		return nil, fmt.Errorf("sse: %w", err)
	}
	if snap.cache, err = httpcache.New(cfg.ResponseCache, anyCached(snap.table), httpcache.Options{Logger: s.logger, Now: s.cacheNow}); err != nil {
		return nil, fmt.Errorf("response_cache: %w", err)
	}
	snap.onClose = append(snap.onClose, snap.cache.Close)
	if snap.ipFilter, err = ipfilter.New(cfg.IPRules, ipfilter.Options{Logger: s.logger, Registerer: s.reg, Resolver: snap.clientIP}); err != nil {
		return nil, err
	}
	if snap.cors, err = cors.New(cfg.CORS, cors.Options{Logger: s.logger, Registerer: s.reg}); err != nil {
		return nil, err
	}
	abuseOpts := abuse.Options{Logger: s.logger, Registerer: s.reg, Resolver: snap.clientIP, RedisPassword: cfg.RateLimiting.Redis.Password}
	if prev := s.cur.Load(); prev != nil {
		abuseOpts.Local = prev.abuse.Local() // a reload keeps the counts and blocks of this process
	}
	if snap.abuse, err = abuse.New(abuseConfig(cfg), abuseOpts); err != nil {
		return nil, err
	}
	snap.onClose = append(snap.onClose, snap.abuse.Close)
	if snap.retry, err = retry.New(cfg.Retry); err != nil {
		return nil, err
	}
	if snap.selectors, err = s.selectors(cfg); err != nil {
		return nil, err
	}
	if snap.pipeline, err = s.declare(snap); err != nil {
		return nil, err
	}
	if snap.conns, err = s.connsFor(snap.pipeline); err != nil {
		return nil, err
	}
	snap.onClose = append(snap.onClose, snap.conns.release)
	if err = s.assemble(snap); err != nil {
		return nil, err
	}
	return snap, nil
}

// buildReference builds the API reference of table's routes whose service has an upstream (what the
// gateway serves), under cfg's API keys; nil when cfg turns the reference off.
func (s *Server) buildReference(cfg *config.Config, table *routes.Table) (*openapi.Document, error) {
	if !cfg.Docs.On() {
		return nil, nil
	}
	var served []protoreflect.ServiceDescriptor
	for _, sd := range s.services.descriptors() {
		if _, ok := s.addrs[string(sd.FullName())]; ok {
			served = append(served, sd)
		}
	}
	opts := s.openapi
	opts.APIKeys = len(cfg.Auth.APIKeys) > 0
	doc, err := openapi.Build(table, served, opts)
	if err != nil {
		return nil, fmt.Errorf("building the API reference: %w", err)
	}
	return doc, nil
}

// abuseConfig is cfg's abuse section with its backend following the rate limiter's: a gateway
// whose limits are shared through Redis shares its blocks there too, on the same Redis unless
// abuse.redis names another.
func abuseConfig(cfg *config.Config) abuse.Config {
	ac := cfg.Abuse
	if ac.Backend == "" && cfg.RateLimiting.Backend == ratelimit.BackendRedis {
		ac.Backend = abuse.BackendRedis
		if ac.Redis.Addr == "" && len(ac.Redis.Addrs) == 0 { // the rate limiter's Redis (node, cluster or sentinel), with abuse's own timeout and pool
			timeout, pool := ac.Redis.Timeout, ac.Redis.PoolSize
			ac.Redis.Config = cfg.RateLimiting.Redis.Config
			ac.Redis.Timeout, ac.Redis.PoolSize = timeout, pool
		}
		if ac.Redis.MasterName != "" && ac.Redis.SentinelPassword == "" { // abuse's own sentinels: the one secret
			ac.Redis.SentinelPassword = cfg.RateLimiting.Redis.SentinelPassword
		}
	}
	return ac
}

// sharedConns is one upstream.Set shared by the snapshots whose service config is the same: a
// reload that changes no retry policy keeps the connections, one that does dials new ones, and
// the old ones close when the last snapshot using them is released. The client stages need no
// new connections: they are stateless (passport, deadline, early-refusal) or long-lived (the
// breakers, updated in place).
type sharedConns struct {
	set  *upstream.Set
	key  string // the service config's inputs, as JSON
	refs atomic.Int64
}

func (c *sharedConns) release() error {
	if c.refs.Add(-1) == 0 {
		return c.set.Close()
	}
	return nil
}

// connsFor returns the connections for p's client and transport stages: the current
// snapshot's when their service config is the same, else new ones.
func (s *Server) connsFor(p pipeline.Pipeline) (*sharedConns, error) {
	opts := s.dial
	opts.UnaryInterceptors, opts.StreamInterceptors, opts.MethodConfigs, opts.RetryThrottling = p.DialOptions(s.trace)
	key, err := json.Marshal(struct {
		M []upstream.MethodConfig
		T *upstream.RetryThrottling
	}{opts.MethodConfigs, opts.RetryThrottling})
	if err != nil {
		return nil, fmt.Errorf("rendering the service config: %w", err)
	}
	if prev := s.cur.Load(); prev != nil && prev.conns.key == string(key) {
		prev.conns.refs.Add(1)
		return prev.conns, nil
	}
	set, err := upstream.DialPools(s.addrs, opts)
	if err != nil {
		return nil, err
	}
	c := &sharedConns{set: set, key: string(key)}
	c.refs.Store(1)
	return c, nil
}

// registerUpstreams registers the generated handlers of every configured upstream on mux: over
// the service's connections, or for a service with named pools over a poolRouter.
func (s *Server) registerUpstreams(mux *runtime.ServeMux, set *upstream.Set) error {
	for _, name := range set.Names() {
		var cc grpc.ClientConnInterface = set.Conn(name)
		if set.HasPools(name) {
			cc = s.newPoolRouter(set, name, s.static.Upstreams[name].Traffic().PoolNames())
		}
		if err := s.services[name].Register(context.Background(), mux, cc); err != nil {
			return fmt.Errorf("registering %s: %w", name, err)
		}
	}
	return nil
}

func (sn *snapshot) tryAcquire() bool {
	for {
		n := sn.refs.Load()
		if n <= 0 {
			return false
		}
		if sn.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

func (sn *snapshot) release() {
	if sn.refs.Add(-1) == 0 {
		if err := sn.close(); err != nil {
			sn.logger.Error("closing the previous configuration's stages", slog.Any("error", err))
		}
	}
}

func (sn *snapshot) close() error {
	var errs []error
	for i := len(sn.onClose) - 1; i >= 0; i-- {
		errs = append(errs, sn.onClose[i]())
	}
	sn.onClose = nil
	return errors.Join(errs...)
}

// anyCached reports whether a GET route of table opts into the response cache: without one
// the cache stage keeps no store and writes invalidate nothing.
func anyCached(table *routes.Table) bool {
	for _, rt := range table.Routes() {
		if rt.Policy.Cache.TTL > 0 && rt.HTTPMethod == http.MethodGet && !rt.ServerStreaming {
			return true
		}
	}
	return false
}
