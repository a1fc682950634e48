package config

import (
	"time"

	"github.com/acme/shopgate/gateway/abuse"
	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/breaker"
	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/gateway/connlimit"
	"github.com/acme/shopgate/gateway/cors"
	"github.com/acme/shopgate/gateway/httpcache"
	"github.com/acme/shopgate/gateway/ipfilter"
	"github.com/acme/shopgate/gateway/passport"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/ratelimit"
	"github.com/acme/shopgate/gateway/retry"
	"github.com/acme/shopgate/gateway/sse"
	"github.com/acme/shopgate/gateway/streamlimit"
	"github.com/acme/shopgate/gateway/traffic"
	"github.com/acme/shopgate/internal/tlsfiles"
)

// The defaults of the gateway's own sections.
const (
	// DefaultListen is the address the gateway listens on.
	DefaultListen = "127.0.0.1:8080"
	// DefaultReadHeaderTimeout bounds reading a request's headers.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included.
	DefaultReadTimeout = 30 * time.Second
	// DefaultIdleTimeout closes keep-alive connections idle this long.
	DefaultIdleTimeout = 120 * time.Second
	// DefaultMaxHeaderBytes bounds the size of a request's headers.
	DefaultMaxHeaderBytes = 64 << 10
	// DefaultMaxConnections bounds the open client connections (gateway/connlimit).
	DefaultMaxConnections = connlimit.DefaultMax
	// DefaultShutdownTimeout bounds a graceful shutdown.
	DefaultShutdownTimeout = 20 * time.Second
	// DefaultDrainDelay is how long /readyz fails after SIGTERM before the listener closes: long
	// enough for a load balancer or Kubernetes' endpoint controllers to stop sending new
	// connections (endpoint removal reaches kube-proxy and ingresses within a few seconds), short
	// enough that a rolling update of many replicas stays quick.
	DefaultDrainDelay = 5 * time.Second
	// DefaultMaxBodyBytes bounds a request body (1 MiB).
	DefaultMaxBodyBytes = 1 << 20
	// DefaultTimeout bounds an upstream call when no policy names one.
	DefaultTimeout = 10 * time.Second
	// DefaultRateLimitRequests, DefaultRateLimitPer and DefaultRateLimitBurst are the rate limit of
	// a route when no policy names one: 100 requests per minute per caller, bursts of 100.
	DefaultRateLimitRequests = 100
	DefaultRateLimitPer      = 60 * time.Second
	DefaultRateLimitBurst    = 100
)

// Config is the whole gateway YAML file. The zero value, once Parse applied the defaults, is a gateway on
// DefaultListen with no upstreams.
type Config struct {
	// Listen is the HTTP listen address. Default: DefaultListen. Not reloadable.
	Listen string `yaml:"listen"`
	// Upstreams maps a full gRPC service name ("shop.order.v1.OrderService") to its addresses,
	// pools and traffic rules. Only services listed here are served. Addresses and pools are
	// not reloadable; rules are.
	Upstreams map[string]Upstream `yaml:"upstreams"`
	// Server holds the HTTP server's timeouts and sizes.
	Server Server `yaml:"server"`
	// Limits holds request size limits.
	Limits Limits `yaml:"limits"`
	// Defaults is the policy of a route that neither its proto nor Routes configure.
	Defaults Defaults `yaml:"defaults"`
	// Routes overrides the policy per service ("pkg.Service") or per RPC ("pkg.Service/Method");
	// an RPC entry wins over its service's entry, and both win over the proto options.
	Routes map[string]RouteOverride `yaml:"routes"`
	// Auth configures authentication (gateway/auth).
	Auth auth.Config `yaml:"auth"`
	// RateLimiting configures the rate limiter's backend (gateway/ratelimit).
	RateLimiting ratelimit.Config `yaml:"rate_limiting"`
	// Breaker configures the circuit breakers (gateway/breaker).
	Breaker breaker.Config `yaml:"breaker"`
	// Retry configures the gRPC retries of idempotent RPCs (gateway/retry). Retry policies, like
	// route timeouts, are part of the upstream connections' service config: a reload that
	// changes them (here or through a route's idempotent flag or timeout) dials new connections.
	Retry retry.Config `yaml:"retry"`
	// CORS configures cross-origin requests (gateway/cors).
	CORS cors.Config `yaml:"cors"`
	// IPRules configures the global IP allow and deny lists (gateway/ipfilter).
	IPRules ipfilter.Config `yaml:"ip_rules"`
	// ClientIP configures which proxies are trusted to name the client (gateway/clientip).
	ClientIP clientip.Config `yaml:"client_ip"`
	// Abuse configures the blocking of client addresses that fail authentication too often
	// (gateway/abuse). Its backend follows rate_limiting's (and its Redis address, unless set).
	Abuse abuse.Config `yaml:"abuse"`
	// Streams caps the server streams one caller may hold open at once, per replica
	// (gateway/streamlimit). Default: 10. Reloadable; a reload keeps the open counts.
	Streams streamlimit.Config `yaml:"streams"`
	// SSE configures the server-sent events of server-streaming routes (gateway/sse): the
	// heartbeat interval. Default: 15s. Reloadable.
	SSE sse.Config `yaml:"sse"`
	// ResponseCache is where the answers of the routes that opt into the response cache
	// (routes.*.cache.ttl) are kept (gateway/httpcache): memory (default, 64 MiB, 10000
	// entries) or Redis. Reloadable.
	ResponseCache httpcache.Config `yaml:"response_cache"`
	// Passport configures the passports the gateway signs for the services (gateway/passport).
	// Not reloadable: the key folder is watched instead.
	Passport passport.Config `yaml:"passport"`
	// Docs is the API reference the gateway serves (GET /openapi.json, GET /docs). Reloadable.
	Docs Docs `yaml:"docs"`
}

// Docs configures the API reference (gateway/openapi).
type Docs struct {
	// Enabled serves GET /openapi.json and GET /docs; false answers them 404 (a production
	// gateway that does not publish its API). Default: true.
	Enabled *bool `yaml:"enabled"`
}

// On reports whether the reference is served: Enabled, true when unset.
func (d Docs) On() bool { return d.Enabled == nil || *d.Enabled }

// Upstream is one gRPC service's backends: its default pool (Addresses), optional named pools
// beside it, and the rules that send requests to them (gateway/traffic).
type Upstream struct {
	// Addresses are host:port pairs, balanced round-robin with gRPC health checking, or one
	// "dns:///host:port" name, re-resolved by grpc-go's DNS resolver (a Kubernetes Service
	// name). They are the pool named "default". Required. Not reloadable.
	Addresses []string `yaml:"addresses"`
	// Pools are named pools beside the default one ("canary": {addresses: [...]}), each with
	// its own connections, outlier ejection and, per RPC, its own circuit breaker. Default:
	// none. Their addresses are not reloadable.
	Pools map[string]traffic.Pool `yaml:"pools"`
	// Rules choose a pool per request, first match wins; the default pool takes the rest.
	// Default: none. Reloadable (SIGHUP), weights included.
	Rules []traffic.Rule `yaml:"rules"`
	// TLS dials every connection of every pool of the service over TLS (ca_file, server_name;
	// cert_file and key_file for mutual TLS), health checks included; the files are re-read
	// when they change (internal/tlsfiles). Default: none (plaintext). Not reloadable; the
	// files rotate.
	TLS tlsfiles.ClientFiles `yaml:"tls"`
}

// Traffic returns u's pools and rules as gateway/traffic takes them.
func (u Upstream) Traffic() traffic.Config { return traffic.Config{Pools: u.Pools, Rules: u.Rules} }

// Addrs returns the addresses of each of u's pools by pool name, the default pool's
// (Addresses) under traffic.DefaultPool.
func (u Upstream) Addrs() map[string][]string {
	out := make(map[string][]string, 1+len(u.Pools))
	out[traffic.DefaultPool] = u.Addresses
	for name, p := range u.Pools {
		out[name] = p.Addresses
	}
	return out
}

// Server holds the HTTP server's settings.
type Server struct {
	// ReadHeaderTimeout. Default: DefaultReadHeaderTimeout (5s).
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout. Default: DefaultReadTimeout (30s).
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// WriteTimeout. Default: 0 (none), so that streaming responses (:watch) are not cut; the
	// route timeout bounds every upstream call instead.
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// IdleTimeout. Default: DefaultIdleTimeout (120s).
	IdleTimeout time.Duration `yaml:"idle_timeout"`
	// MaxHeaderBytes. Default: DefaultMaxHeaderBytes (64 KiB).
	MaxHeaderBytes int `yaml:"max_header_bytes"`
	// MaxConnections bounds the open client connections: one more is accepted and closed at
	// once (counted in gateway_connections_refused_total), and from 80% of it on, keep-alive
	// connections idle for 5s are closed instead of after IdleTimeout (gateway/connlimit).
	// The process's file descriptor limit must be above it. Default: DefaultMaxConnections
	// (10000); 0 means the default.
	MaxConnections int `yaml:"max_connections"`
	// ShutdownTimeout bounds a graceful shutdown. Default: DefaultShutdownTimeout (20s).
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// WatchConfig reloads the file when it changes, as SIGHUP does (a Kubernetes ConfigMap
	// update included: cmd/internal/gwmain). Default: true (Parse sets it before decoding);
	// false leaves SIGHUP only.
	WatchConfig bool `yaml:"watch_config"`
	// DrainDelay is the first phase of a graceful shutdown (SIGTERM, SIGINT): for this long
	// /readyz answers 503 {"draining":true} while every other request is still served (each
	// answer then carries Connection: close, so keep-alive clients reconnect elsewhere); then the
	// listener closes and in-flight requests get ShutdownTimeout to finish. A second signal
	// ends the delay at once. Default: DefaultDrainDelay (5s); negative means no delay (the
	// development stack's, `make run`: Ctrl-C stops at once). Not reloadable.
	DrainDelay time.Duration `yaml:"drain_delay"`
	// AdminListen, when set (host:port), is a second listener that alone serves /metrics,
	// /readyz and /admin/*, so that they are not on the public port; the public listener then
	// answers 404 for them like for any unknown path. /healthz is served on both. Default: ""
	// (everything on Listen). Not reloadable.
	AdminListen string `yaml:"admin_listen"`
	// TLS serves HTTPS (HTTP/2 and HTTP/1.1 by ALPN) with the certificate of these files,
	// re-read when they change (internal/tlsfiles); client_ca_file requires client
	// certificates. Default: none (plain HTTP). The files rotate; the names do not reload.
	TLS tlsfiles.ServerFiles `yaml:"tls"`
}

// Drain returns DrainDelay with a negative value (no delay) as 0.
func (s Server) Drain() time.Duration { return max(s.DrainDelay, 0) }

// Limits holds request size limits.
type Limits struct {
	// MaxBodyBytes bounds a request body; a larger one is refused with 413.
	// Default: DefaultMaxBodyBytes (1 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
}

// Defaults is the operator's default policy.
type Defaults struct {
	// Timeout of an upstream call. Default: DefaultTimeout (10s).
	Timeout time.Duration `yaml:"timeout"`
	// RateLimit per caller. Default: 100 requests per 60s, burst 100 (a burst left out is the
	// limit's requests, set by gateway/routes).
	RateLimit policy.RateLimit `yaml:"rate_limit"`
}

// RouteOverride overrides the policy of a service or an RPC. A field left out (nil) keeps what
// the lower layers resolved.
type RouteOverride struct {
	// Auth is "required", "optional" or "none".
	Auth *string `yaml:"auth"`
	// Roles: the caller needs one of them; [] clears the roles of lower layers.
	Roles []string `yaml:"roles"`
	// RateLimit per caller.
	RateLimit *policy.RateLimit `yaml:"rate_limit"`
	// Timeout of the upstream call.
	Timeout *time.Duration `yaml:"timeout"`
	// Idempotent says whether the RPC may be retried.
	Idempotent *bool `yaml:"idempotent"`
	// Fallback served while the upstream is unavailable.
	Fallback *policy.Fallback `yaml:"fallback"`
	// AllowCIDRs admits only these client prefixes on the route.
	AllowCIDRs []string `yaml:"allow_cidrs"`
	// DenyCIDRs refuses these client prefixes on the route.
	DenyCIDRs []string `yaml:"deny_cidrs"`
	// Delegates are the services (full names) the route's service calls on the caller's
	// behalf, named in its passports' aud; [] clears the delegates of lower layers.
	Delegates []string `yaml:"delegates"`
	// Cache is the route's HTTP caching policy (gateway/httpcache): {ttl: 5s} puts its GET
	// answers in the gateway's response cache for 5s; max_age sets Cache-Control's max-age
	// of a public route. Default: no cache, max-age 0.
	Cache *policy.Cache `yaml:"cache"`
}

// Load reads and parses the file at path; LoadEnv adds the environment's overrides.
func Load(path string) (*Config, error) { return LoadEnv(path, nil) }

// Parse decodes data strictly (unknown keys are errors), applies the defaults and validates
// the result. An empty document is a valid configuration of defaults. ParseEnv adds the
// environment's overrides.
func Parse(data []byte) (*Config, error) { return ParseEnv(data, nil) }
