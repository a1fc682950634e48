package ratelimit

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/gateway/redisclient"
)

// The backends Config.Backend may name.
const (
	// BackendMemory keeps the limits in this process (the default).
	BackendMemory = "memory"
	// BackendRedis keeps them in Redis, shared by every gateway replica.
	BackendRedis = "redis"
)

// The failure modes of RedisConfig.FailureMode.
const (
	// FailOpen answers from the in-process limiter while Redis is unreachable (the default).
	FailOpen = "open"
	// FailClosed refuses every limited request with 503 UNAVAILABLE while Redis is unreachable.
	FailClosed = "closed"
)

// Defaults of Config.
const (
	// DefaultPolicyName names the quota in the RateLimit-Policy and RateLimit headers.
	DefaultPolicyName = "default"
	// DefaultMaxKeys bounds the keys of the in-memory backend (about 20 MB at most, see Memory).
	DefaultMaxKeys = 100_000
	// DefaultRedisAddr is Redis's address.
	DefaultRedisAddr = "127.0.0.1:6379"
	// DefaultRedisKeyPrefix starts every Redis key (redis_rate adds its own "rate:" before it).
	DefaultRedisKeyPrefix = "shopgate:rl:"
	// DefaultRedisTimeout bounds dialing, each read and write, and each whole call to Redis.
	DefaultRedisTimeout = 100 * time.Millisecond
	// DefaultProbeInterval is how often one request tries Redis again while it is down; the
	// others go straight to the failure mode without waiting.
	DefaultProbeInterval = time.Second
)

// Config is the `rate_limiting` section of the gateway's YAML. The zero value means "the
// defaults": an in-memory limiter of at most DefaultMaxKeys keys. The limits themselves are
// per route (policy.Route.Policy.RateLimit), read at each request.
type Config struct {
	// Backend is "memory" or "redis". Default: "memory".
	Backend string `yaml:"backend" json:"backend"`
	// PolicyName names the quota in the RateLimit-Policy and RateLimit headers. Default:
	// "default".
	PolicyName string `yaml:"policy_name" json:"policy_name"`
	// MaxKeys bounds the in-memory backend (also the fail-open fallback of Redis); the least
	// recently used key is evicted beyond it. Default: DefaultMaxKeys.
	MaxKeys int `yaml:"max_keys" json:"max_keys"`
	// Redis configures the Redis backend; it is read only when Backend is "redis". Default: the
	// zero RedisConfig, each of its fields at its own default.
	Redis RedisConfig `yaml:"redis" json:"redis"`
}

// RedisConfig is the `rate_limiting.redis` section. The zero value means the defaults. The
// connection keys (addr, or addrs with master_name for Sentinel, username, db, timeout,
// pool_size, tls) are redisclient.Config's, inline; Timeout defaults to DefaultRedisTimeout
// (100ms) and bounds each call as a whole too, and Addr to DefaultRedisAddr when Addrs is
// empty.
type RedisConfig struct {
	redisclient.Config `yaml:",inline"`
	// KeyPrefix starts every key, so that several gateways or tests can share one Redis.
	// Default: DefaultRedisKeyPrefix.
	KeyPrefix string `yaml:"key_prefix" json:"key_prefix"`
	// FailureMode is "open" (fall back to the in-memory limiter) or "closed" (503
	// UNAVAILABLE) while Redis is unreachable. Default: "open".
	FailureMode string `yaml:"failure_mode" json:"failure_mode"`
	// ProbeInterval is how often one request tries Redis again while it is unreachable.
	// Default: DefaultProbeInterval (1s).
	ProbeInterval time.Duration `yaml:"probe_interval" json:"probe_interval"`
}

// Validate reports every invalid value of cfg at once (what New refuses), the `rate_limiting` section's
// keys named.
func (cfg Config) Validate() error {
	_, err := cfg.withDefaults()
	return err
}

// withDefaults returns cfg with every zero value replaced by its default, or an error naming
// every invalid value at once.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	switch cfg.Backend {
	case "":
		cfg.Backend = BackendMemory
	case BackendMemory, BackendRedis:
	default:
		errs = append(errs, fmt.Errorf("backend %q is neither %q nor %q", cfg.Backend, BackendMemory, BackendRedis))
	}
	if cfg.PolicyName == "" {
		cfg.PolicyName = DefaultPolicyName
	}
	for _, c := range cfg.PolicyName {
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			errs = append(errs, fmt.Errorf("policy_name %q must be printable ASCII without quotes", cfg.PolicyName))
			break
		}
	}
	if cfg.MaxKeys == 0 {
		cfg.MaxKeys = DefaultMaxKeys
	}
	if cfg.MaxKeys < 0 {
		errs = append(errs, fmt.Errorf("max_keys %d is negative", cfg.MaxKeys))
	}
	r := &cfg.Redis
	if err := r.Config.Validate(); err != nil {
		for _, e := range joined(err) {
			errs = append(errs, fmt.Errorf("redis.%w", e))
		}
	}
	if r.Addr == "" && len(r.Addrs) == 0 {
		r.Addr = DefaultRedisAddr
	}
	if r.KeyPrefix == "" {
		r.KeyPrefix = DefaultRedisKeyPrefix
	}
	if r.Timeout == 0 {
		r.Timeout = DefaultRedisTimeout
	}
	if r.ProbeInterval == 0 {
		r.ProbeInterval = DefaultProbeInterval
	}
	if r.ProbeInterval < 0 {
		errs = append(errs, fmt.Errorf("redis.probe_interval %v is negative", r.ProbeInterval))
	}
	switch r.FailureMode {
	case "":
		r.FailureMode = FailOpen
	case FailOpen, FailClosed:
	default:
		errs = append(errs, fmt.Errorf("redis.failure_mode %q is neither %q nor %q", r.FailureMode, FailOpen, FailClosed))
	}
	return cfg, errors.Join(errs...)
}

// joined returns the errors err joins (errors.Join), or err alone.
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// Options carries what the process provides. Zero values are replaced by defaults.
type Options struct {
	// Logger for backend state changes (one line when Redis goes away, one when it is back).
	// Default: slog.Default().
	Logger *slog.Logger
	// Registerer for metrics. Default: none registered.
	Registerer prometheus.Registerer
	// Resolver finds the client address of anonymous callers. Default: one that trusts no proxy.
	Resolver *clientip.Resolver
	// Local is the in-memory backend to use, so that its state survives a reload: pass the
	// previous stage's Local(). The stage does not own it. Default: a new one of Config.MaxKeys.
	Local *Memory
	// Backend replaces the configured backend (for embedding a custom one). Default: nil, the
	// one Config.Backend names.
	Backend Backend
	// Now is the clock of the in-memory backend. Default: time.Now. The Redis probe interval
	// runs on time.Now whatever Now is (gobreaker takes no clock); tests fake it with
	// testing/synctest.
	Now func() time.Time
}
