package config

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"time"

	"github.com/acme/shopgate/gateway/ipfilter"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/traffic"
)

var errEOF = io.EOF

// applyDefaults replaces every zero field of the gateway's own sections with its default.
// The policy stages' sections are defaulted by their own constructors.
func (c *Config) applyDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	s := &c.Server
	if s.ReadHeaderTimeout == 0 {
		s.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if s.ReadTimeout == 0 {
		s.ReadTimeout = DefaultReadTimeout
	}
	if s.IdleTimeout == 0 {
		s.IdleTimeout = DefaultIdleTimeout
	}
	if s.MaxHeaderBytes == 0 {
		s.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	if s.MaxConnections == 0 {
		s.MaxConnections = DefaultMaxConnections
	}
	if s.ShutdownTimeout == 0 {
		s.ShutdownTimeout = DefaultShutdownTimeout
	}
	if s.DrainDelay == 0 {
		s.DrainDelay = DefaultDrainDelay
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Defaults.Timeout == 0 {
		c.Defaults.Timeout = DefaultTimeout
	}
	if c.Defaults.RateLimit == (policy.RateLimit{}) {
		c.Defaults.RateLimit = policy.RateLimit{Requests: DefaultRateLimitRequests, Per: DefaultRateLimitPer, Burst: DefaultRateLimitBurst}
	}
}

// validate checks the gateway's own sections. Route keys are checked against the compiled
// services by gateway/routes, which knows them.
func (c *Config) validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port", c.Listen))
	}
	for _, name := range sortedKeys(c.Upstreams) {
		u := c.Upstreams[name]
		if !ValidServiceName(name) {
			errs = append(errs, fmt.Errorf("upstreams: %q is not a full gRPC service name (pkg.Service)", name))
		}
		for _, err := range joined(traffic.ValidateAddresses(u.Addresses)) {
			errs = append(errs, fmt.Errorf("upstreams.%s.addresses: %w", name, err))
		}
		for _, err := range joined(u.Traffic().Validate()) {
			errs = append(errs, fmt.Errorf("upstreams.%s.%w", name, err))
		}
	}
	s := c.Server
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"server.read_header_timeout", s.ReadHeaderTimeout},
		{"server.read_timeout", s.ReadTimeout},
		{"server.write_timeout", s.WriteTimeout},
		{"server.idle_timeout", s.IdleTimeout},
		{"server.shutdown_timeout", s.ShutdownTimeout},
		{"defaults.timeout", c.Defaults.Timeout},
	} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s: must not be negative, got %s", d.name, d.v))
		}
	}
	if s.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("server.max_header_bytes: must not be negative, got %d", s.MaxHeaderBytes))
	}
	if s.MaxConnections < 0 {
		errs = append(errs, fmt.Errorf("server.max_connections: must not be negative, got %d", s.MaxConnections))
	}
	errs = append(errs, c.validateAdminListen()...)
	if c.Limits.MaxBodyBytes < 0 {
		errs = append(errs, fmt.Errorf("limits.max_body_bytes: must not be negative, got %d", c.Limits.MaxBodyBytes))
	}
	if err := c.Defaults.RateLimit.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("defaults.rate_limit: %w", err))
	}
	for _, key := range sortedKeys(c.Routes) {
		if err := c.Routes[key].Validate(); err != nil {
			errs = append(errs, fmt.Errorf("routes.%s: %w", key, err))
		}
	}
	if err := c.Passport.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := c.SSE.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("sse: %w", err))
	}
	if err := c.RateLimiting.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("rate_limiting: %w", err))
	}
	if err := c.Abuse.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("abuse: %w", err))
	}
	if err := c.ResponseCache.Validate(); err != nil {
		errs = append(errs, fmt.Errorf("response_cache: %w", err))
	}
	errs = append(errs, c.validateTLS()...)
	return errors.Join(errs...)
}

// Validate checks an override's values (auth mode, timeout, rate limit, fallback, CIDRs) and
// reports every problem at once. It is the only check of a YAML override: gateway/routes
// applies a validated configuration as it is.
func (o RouteOverride) Validate() error {
	var errs []error
	if o.Auth != nil {
		if _, err := policy.ParseAuthMode(*o.Auth); err != nil {
			errs = append(errs, fmt.Errorf("auth: %w", err))
		}
	}
	if o.Timeout != nil && *o.Timeout <= 0 {
		errs = append(errs, fmt.Errorf("timeout: must be a positive duration, got %s", *o.Timeout))
	}
	if o.RateLimit != nil {
		if err := o.RateLimit.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("rate_limit: %w", err))
		}
	}
	if o.Fallback != nil {
		if err := o.Fallback.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("fallback: %w", err))
		}
	}
	if o.Cache != nil {
		if err := o.Cache.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("cache: %w", err))
		}
	}
	for _, d := range o.Delegates {
		if !ValidServiceName(d) {
			errs = append(errs, fmt.Errorf("delegates: %q is not a full gRPC service name (pkg.Service)", d))
		}
	}
	if _, err := ipfilter.ParsePrefixes("allow_cidrs", o.AllowCIDRs); err != nil {
		errs = append(errs, err)
	}
	if _, err := ipfilter.ParsePrefixes("deny_cidrs", o.DenyCIDRs); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// joined returns the errors err joins (errors.Join), err alone, or none for nil: one line per
// problem, each with its own prefix.
func joined(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, joined(e)...)
		}
		return out
	}
	return []error{err}
}

// ValidServiceName reports whether s looks like a full gRPC service name ("pkg.Service").
func ValidServiceName(s string) bool {
	return strings.Contains(s, ".") && !strings.ContainsAny(s, "/ ")
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
