package httpcache

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/acme/shopgate/gateway/redisclient"
)

// The backends of the response cache.
const (
	// BackendMemory keeps the answers in this process (the default).
	BackendMemory = "memory"
	// BackendRedis keeps them in Redis, shared by every replica.
	BackendRedis = "redis"
)

// Defaults of Config.
const (
	DefaultMaxBytes     = 64 << 20
	DefaultMaxEntries   = 10000
	DefaultRedisAddr    = "127.0.0.1:6379"
	DefaultRedisPrefix  = "shopgate:cache:"
	DefaultRedisTimeout = 50 * time.Millisecond
	// MaxTTL bounds every route's cache TTL, and is how long Redis keeps a resource's
	// generation counter after its last write.
	MaxTTL = 24 * time.Hour
)

// Config is the `response_cache` section of the gateway's YAML: where the answers of routes
// that opt in (policy cache.ttl) are kept. The zero value means the defaults: in memory, 64
// MiB and 10000 entries at most. It does not turn the cache on: the routes do. Reloadable (a
// reload starts an empty memory cache).
type Config struct {
	// Backend is "memory" or "redis". Default: memory.
	Backend string `yaml:"backend" json:"backend"`
	// MaxBytes bounds the memory backend: bodies, keys and headers. Default: 64 MiB.
	MaxBytes int64 `yaml:"max_bytes" json:"max_bytes"`
	// MaxEntries bounds the memory backend's count of answers. Default: 10000.
	MaxEntries int `yaml:"max_entries" json:"max_entries"`
	// Redis configures the Redis backend; read only when Backend is "redis".
	Redis RedisConfig `yaml:"redis" json:"redis"`
}

// RedisConfig is where the shared cache lives. The connection keys (addr, or addrs with
// master_name for Sentinel, username, db, timeout, pool_size, tls) are redisclient.Config's,
// inline; Timeout defaults to DefaultRedisTimeout (50ms: a slower Redis is a miss), and Addr to
// DefaultRedisAddr when Addrs is empty.
type RedisConfig struct {
	redisclient.Config `yaml:",inline"`
	// KeyPrefix starts every key, so that several gateways or tests can share one Redis. It
	// must not hold { or }: each resource is its keys' hash tag, so that an answer and its
	// resource's generation share a Redis Cluster slot. Default: "shopgate:cache:".
	KeyPrefix string `yaml:"key_prefix" json:"key_prefix"`
}

// Validate checks cfg and reports every problem at once.
func (c Config) Validate() error {
	var errs []error
	switch c.Backend {
	case "", BackendMemory, BackendRedis:
	default:
		errs = append(errs, fmt.Errorf("backend %q is neither %q nor %q", c.Backend, BackendMemory, BackendRedis))
	}
	if c.MaxBytes < 0 {
		errs = append(errs, fmt.Errorf("max_bytes: must not be negative, got %d", c.MaxBytes))
	}
	if c.MaxEntries < 0 {
		errs = append(errs, fmt.Errorf("max_entries: must not be negative, got %d", c.MaxEntries))
	}
	if err := c.Redis.Config.Validate(); err != nil {
		for _, e := range joined(err) {
			errs = append(errs, fmt.Errorf("redis.%w", e))
		}
	}
	if strings.ContainsAny(c.Redis.KeyPrefix, "{}") {
		errs = append(errs, fmt.Errorf("redis.key_prefix %q must not contain { or } (the resource is the key's hash tag)", c.Redis.KeyPrefix))
	}
	return errors.Join(errs...)
}

func (c Config) withDefaults() Config {
	if c.Backend == "" {
		c.Backend = BackendMemory
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = DefaultMaxBytes
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = DefaultMaxEntries
	}
	if c.Redis.Addr == "" && len(c.Redis.Addrs) == 0 {
		c.Redis.Addr = DefaultRedisAddr
	}
	if c.Redis.KeyPrefix == "" {
		c.Redis.KeyPrefix = DefaultRedisPrefix
	}
	if c.Redis.Timeout == 0 {
		c.Redis.Timeout = DefaultRedisTimeout
	}
	return c
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
	// Logger reports a Redis outage (once per outage, not per request). Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock of TTLs and Age. Default: time.Now.
	Now func() time.Time
}
