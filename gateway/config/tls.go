package config

import (
	"fmt"
	"log/slog"

	"github.com/acme/shopgate/internal/tlsfiles"
)

// validateTLS loads every TLS file the configuration names (server.tls, upstreams.*.tls, the
// Redis sections' tls): a file missing, unreadable, or a certificate that does not match its key
// is refused here, before anything starts.
func (c *Config) validateTLS() []error {
	var errs []error
	quiet := slog.New(slog.DiscardHandler)
	if c.Server.TLS.Enabled() {
		if _, err := tlsfiles.NewServer(c.Server.TLS, quiet); err != nil {
			errs = append(errs, fmt.Errorf("server.tls: %w", err))
		}
	}
	client := func(name string, f tlsfiles.ClientFiles) {
		if f.Enabled() {
			if _, err := tlsfiles.NewClient(f, quiet); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
		}
	}
	for _, name := range sortedKeys(c.Upstreams) {
		client("upstreams."+name+".tls", c.Upstreams[name].TLS)
	}
	client("rate_limiting.redis.tls", c.RateLimiting.Redis.TLS)
	client("abuse.redis.tls", c.Abuse.Redis.TLS)
	client("response_cache.redis.tls", c.ResponseCache.Redis.TLS)
	return errs
}
