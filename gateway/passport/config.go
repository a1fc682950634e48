package passport

import (
	"errors"
	"fmt"
	"time"
)

// The defaults of Config and the passport's fixed names.
const (
	// DefaultTTL is a passport's lifetime (exp minus iat).
	DefaultTTL = 5 * time.Minute
	// DefaultCacheSize is how many signed passports the gateway keeps, one per caller and service.
	DefaultCacheSize = 10_000
	// DefaultKeyCheckInterval is how often the key folder is looked at again.
	DefaultKeyCheckInterval = 10 * time.Second
	// MinTTL and MaxTTL bound Config.TTL.
	MinTTL = 10 * time.Second
	MaxTTL = time.Hour

	// Issuer is the passport's iss.
	Issuer = "shopgate-gateway"
	// MDPassport is the metadata key of the passport: one compact JWS.
	MDPassport = "x-passport"
)

// Config is the `passport:` section of the gateway's YAML. The zero value means the defaults.
// It is read once, at start (not reloadable); the key folder itself is watched.
type Config struct {
	// KeyDir is the folder of signing keys: Ed25519 private keys, one PKCS #8 PEM file per key
	// (*.pem; `gateway passport-keys new` makes one). The gateway signs with the last by name
	// (the newest, with the names it gives) and looks at the folder again every
	// KeyCheckInterval, so a key added or removed takes effect without a restart. Default: ""
	// means a key made in memory at start, which only a service in the same process can be
	// handed (Signer.JWKS): for tests and benchmarks; cmd/gateway requires a folder.
	KeyDir string `yaml:"key_dir"`
	// TTL is a passport's lifetime; the gateway signs a caller's passport for a service again
	// once half of it has passed. Default: DefaultTTL (5m); from MinTTL (10s) to MaxTTL (1h).
	TTL time.Duration `yaml:"ttl"`
	// CacheSize bounds the signed passports kept (one per caller and service). Default:
	// DefaultCacheSize (10000).
	CacheSize int `yaml:"cache_size"`
	// KeyCheckInterval is how often KeyDir is looked at again. Default: DefaultKeyCheckInterval
	// (10s).
	KeyCheckInterval time.Duration `yaml:"key_check_interval"`
}

// withDefaults returns c with every zero field set to its default.
func (c Config) withDefaults() Config {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.CacheSize == 0 {
		c.CacheSize = DefaultCacheSize
	}
	if c.KeyCheckInterval == 0 {
		c.KeyCheckInterval = DefaultKeyCheckInterval
	}
	return c
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.TTL < MinTTL || c.TTL > MaxTTL {
		errs = append(errs, fmt.Errorf("ttl %s: want %s to %s", c.TTL, MinTTL, MaxTTL))
	}
	if c.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("cache_size %d: want > 0", c.CacheSize))
	}
	if c.KeyCheckInterval < 0 {
		errs = append(errs, fmt.Errorf("key_check_interval %s: want > 0", c.KeyCheckInterval))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("passport: %w", err)
	}
	return nil
}
