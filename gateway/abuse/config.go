package abuse

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/gateway/redisclient"
)

// The backends Config.Backend may name.
const (
	// BackendMemory counts failures and keeps blocks in this process (the default).
	BackendMemory = "memory"
	// BackendRedis keeps them in Redis, shared by every gateway replica.
	BackendRedis = "redis"
)

// Defaults of Config.
const (
	// DefaultMaxFailures is how many failed authentications an address may have within Window;
	// one more blocks it (API.md: "more than 30 ... within one minute").
	DefaultMaxFailures = 30
	// DefaultWindow is the sliding window over which failures are counted.
	DefaultWindow = time.Minute
	// DefaultBlockFor is how long a blocked address is refused.
	DefaultBlockFor = 5 * time.Minute
	// DefaultMaxKeys bounds the addresses the in-memory backend remembers (and the addresses
	// whose Redis answer a replica caches). See Memory for the memory this costs.
	DefaultMaxKeys = 100_000
	// DefaultRedisAddr is Redis's address.
	DefaultRedisAddr = "127.0.0.1:6379"
	// DefaultRedisKeyPrefix starts every Redis key of the detector.
	DefaultRedisKeyPrefix = "shopgate:abuse:"
	// DefaultRedisTimeout bounds dialing, each read and write, and each whole call to Redis.
	DefaultRedisTimeout = 100 * time.Millisecond
	// DefaultProbeInterval is how often one request tries Redis again while it is unreachable.
	DefaultProbeInterval = time.Second
	// DefaultSyncInterval is how long a replica trusts Redis's answer for one address: a block
	// made (or lifted) by another replica is honoured here within this delay.
	DefaultSyncInterval = time.Second
	// MaxMaxFailures bounds MaxFailures: the in-memory backend keeps up to MaxFailures+1
	// timestamps per address.
	MaxMaxFailures = 10_000
)

// Config is the `abuse` section of the gateway's YAML. The zero value means "the defaults": on,
// more than 30 failed authentications (401) within one minute block an address for 5 minutes,
// counted in memory.
type Config struct {
	// Disabled turns the detector off: the stage passes every request untouched. Default: false
	// (on, as API.md states the behaviour as part of the contract).
	Disabled bool `yaml:"disabled" json:"disabled"`
	// MaxFailures is how many failed authentications (401 answers) an address may have within
	// Window; the next one blocks it. Default: DefaultMaxFailures (30). At most MaxMaxFailures.
	MaxFailures int `yaml:"max_failures" json:"max_failures"`
	// Window is the sliding window over which failures are counted. Default: DefaultWindow (1m).
	Window time.Duration `yaml:"window" json:"window"`
	// BlockFor is how long a blocked address is refused with 429. Default: DefaultBlockFor (5m).
	BlockFor time.Duration `yaml:"block_for" json:"block_for"`
	// Backend is "memory" or "redis"; the gateway sets it to follow rate_limiting.backend.
	// Default: "memory".
	Backend string `yaml:"backend" json:"backend"`
	// MaxKeys bounds the addresses held in memory (the memory backend, Redis's fail-open
	// fallback, and the cache of Redis answers); the least recently used is forgotten beyond it.
	// Default: DefaultMaxKeys (100000).
	MaxKeys int `yaml:"max_keys" json:"max_keys"`
	// Redis configures the Redis backend.
	Redis RedisConfig `yaml:"redis" json:"redis"`
}

// RedisConfig is the `abuse.redis` section. The zero value means the defaults. The connection
// keys (addr, or addrs with master_name for Sentinel, username, db, timeout, pool_size, tls)
// are redisclient.Config's, inline; Timeout defaults to DefaultRedisTimeout (100ms) and bounds
// each call as a whole too, and Addr to DefaultRedisAddr when Addrs is empty. The password is
// never in the YAML: Config.Password, else Options.RedisPassword.
type RedisConfig struct {
	redisclient.Config `yaml:",inline"`
	// KeyPrefix starts every key. It must not hold { or }: each address's keys carry the
	// address as their hash tag, so that they share a Redis Cluster slot. Default:
	// DefaultRedisKeyPrefix ("shopgate:abuse:").
	KeyPrefix string `yaml:"key_prefix" json:"key_prefix"`
	// ProbeInterval is how often one request tries Redis again while it is unreachable.
	// Default: DefaultProbeInterval (1s).
	ProbeInterval time.Duration `yaml:"probe_interval" json:"probe_interval"`
	// SyncInterval is how long a replica keeps Redis's answer for an address before asking
	// again: the delay within which another replica's block or lift applies here. Default:
	// DefaultSyncInterval (1s).
	SyncInterval time.Duration `yaml:"sync_interval" json:"sync_interval"`
}

// Validate reports every invalid value of cfg at once (what New refuses), the `abuse` section's
// keys named.
func (cfg Config) Validate() error {
	_, err := cfg.withDefaults()
	return err
}

// withDefaults returns cfg with every zero value replaced by its default, or every problem at
// once.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	switch cfg.Backend {
	case "":
		cfg.Backend = BackendMemory
	case BackendMemory, BackendRedis:
	default:
		errs = append(errs, fmt.Errorf("backend %q is neither %q nor %q", cfg.Backend, BackendMemory, BackendRedis))
	}
	if cfg.MaxFailures == 0 {
		cfg.MaxFailures = DefaultMaxFailures
	}
	if cfg.MaxFailures < 0 || cfg.MaxFailures > MaxMaxFailures {
		errs = append(errs, fmt.Errorf("max_failures %d is not between 1 and %d", cfg.MaxFailures, MaxMaxFailures))
	}
	errs = durationDefault(errs, "window", &cfg.Window, DefaultWindow, time.Millisecond)
	errs = durationDefault(errs, "block_for", &cfg.BlockFor, DefaultBlockFor, time.Millisecond)
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
	if strings.ContainsAny(r.KeyPrefix, "{}") {
		errs = append(errs, fmt.Errorf("redis.key_prefix %q must not contain { or } (the address is the key's hash tag)", r.KeyPrefix))
	}
	errs = durationDefault(errs, "redis.timeout", &r.Timeout, DefaultRedisTimeout, 0)
	errs = durationDefault(errs, "redis.probe_interval", &r.ProbeInterval, DefaultProbeInterval, 0)
	errs = durationDefault(errs, "redis.sync_interval", &r.SyncInterval, DefaultSyncInterval, 0)
	return cfg, errors.Join(errs...)
}

// joined returns the errors err joins (errors.Join), or err alone.
func joined(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// durationDefault sets *d to def when zero and appends an error when it is negative or, when
// least is positive, below least (Redis counts whole milliseconds).
func durationDefault(errs []error, name string, d *time.Duration, def, least time.Duration) []error {
	switch {
	case *d == 0:
		*d = def
	case *d < 0:
		errs = append(errs, fmt.Errorf("%s %v is negative", name, *d))
	case *d < least:
		errs = append(errs, fmt.Errorf("%s %v is below %v", name, *d, least))
	}
	return errs
}

// Limits are the thresholds of one detector, passed to the Store at each failure so that a
// reload that changes them applies to the state a Memory kept.
type Limits struct {
	// MaxFailures within Window are allowed; one more blocks the address.
	MaxFailures int
	// Window is the sliding window of the count.
	Window time.Duration
	// BlockFor is how long a block lasts.
	BlockFor time.Duration
}

// Options carries what the process provides. Zero values are replaced by defaults.
type Options struct {
	// Logger receives one Warn line per block and the Redis outage transitions. Default:
	// slog.Default().
	Logger *slog.Logger
	// Registerer for metrics. Default: none registered.
	Registerer prometheus.Registerer
	// Resolver finds the client address (X-Forwarded-For only through client_ip.trusted_proxies).
	// Default: one that trusts no proxy.
	Resolver *clientip.Resolver
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// Local is the in-memory store to use, so that failures and blocks survive a reload: pass
	// the previous detector's Local(). The detector does not own it. Default: a new one of
	// Config.MaxKeys.
	Local *Memory
	// RedisPassword is Redis's password (from a secret, never the YAML) when
	// Config.Redis.Password is empty. Default: none.
	RedisPassword string
}
