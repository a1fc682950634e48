package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sort"
	"strings"
	"time"
)

var errEOF = io.EOF

// ApplyDefaults replaces every zero field of the gateway's own sections with its default.
// The policy stages' sections are defaulted by their own constructors.
func (c *Config) ApplyDefaults() {
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
	if s.ShutdownTimeout == 0 {
		s.ShutdownTimeout = DefaultShutdownTimeout
	}
	if c.Limits.MaxBodyBytes == 0 {
		c.Limits.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if c.Defaults.Timeout == 0 {
		c.Defaults.Timeout = DefaultTimeout
	}
	if c.Defaults.RateLimit == (RateLimit{}) {
		c.Defaults.RateLimit = RateLimit{Requests: DefaultRateLimitRequests, Per: DefaultRateLimitPer, Burst: DefaultRateLimitBurst}
	}
	if c.Defaults.RateLimit.Burst == 0 {
		c.Defaults.RateLimit.Burst = c.Defaults.RateLimit.Requests
	}
}

// Validate checks the gateway's own sections. Route keys are checked against the compiled
// services by gateway/routes, which knows them.
func (c *Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen: %q is not host:port", c.Listen))
	}
	for _, name := range sortedKeys(c.Upstreams) {
		u := c.Upstreams[name]
		if !validServiceName(name) {
			errs = append(errs, fmt.Errorf("upstreams: %q is not a full gRPC service name (pkg.Service)", name))
		}
		if len(u.Addresses) == 0 {
			errs = append(errs, fmt.Errorf("upstreams.%s.addresses: at least one address is required", name))
		}
		for _, a := range u.Addresses {
			if _, _, err := net.SplitHostPort(a); err != nil {
				errs = append(errs, fmt.Errorf("upstreams.%s.addresses: %q is not host:port", name, a))
			}
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
	return errors.Join(errs...)
}

// Validate checks a rate limit: positive requests and period, burst not negative.
func (r RateLimit) Validate() error {
	if r.Requests <= 0 {
		return fmt.Errorf("requests: must be positive, got %d", r.Requests)
	}
	if r.Per <= 0 {
		return fmt.Errorf("per: must be a positive duration, got %s", r.Per)
	}
	if r.Burst < 0 {
		return fmt.Errorf("burst: must not be negative, got %d", r.Burst)
	}
	return nil
}

// Validate checks an override's values: auth mode, durations, rate limit, fallback JSON, CIDRs.
func (o RouteOverride) Validate() error {
	if o.Auth != nil {
		if _, err := ParseAuthMode(*o.Auth); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if o.Timeout != nil && *o.Timeout <= 0 {
		return fmt.Errorf("timeout: must be a positive duration, got %s", *o.Timeout)
	}
	if o.RateLimit != nil {
		if err := o.RateLimit.Validate(); err != nil {
			return fmt.Errorf("rate_limit: %w", err)
		}
	}
	if f := o.Fallback; f != nil {
		if f.HTTPStatus != 0 && (f.HTTPStatus < 200 || f.HTTPStatus > 599) {
			return fmt.Errorf("fallback.http_status: %d is not an HTTP status", f.HTTPStatus)
		}
		if !json.Valid([]byte(f.JSONBody)) {
			return fmt.Errorf("fallback.json_body: not valid JSON")
		}
	}
	for _, c := range o.AllowCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("allow_cidrs: %q is not a CIDR prefix", c)
		}
	}
	for _, c := range o.DenyCIDRs {
		if _, err := netip.ParsePrefix(c); err != nil {
			return fmt.Errorf("deny_cidrs: %q is not a CIDR prefix", c)
		}
	}
	return nil
}

// AuthMode values as the YAML spells them.
const (
	AuthRequired = "required"
	AuthOptional = "optional"
	AuthNone     = "none"
)

// ParseAuthMode checks an auth mode spelling ("required", "optional", "none").
func ParseAuthMode(s string) (string, error) {
	switch s {
	case AuthRequired, AuthOptional, AuthNone:
		return s, nil
	}
	return "", fmt.Errorf("%q is not one of required, optional, none", s)
}

func validServiceName(s string) bool {
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
