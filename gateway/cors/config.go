package cors

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config.
var (
	// DefaultAllowedMethods is used when Config.AllowedMethods is empty.
	DefaultAllowedMethods = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
	// DefaultAllowedHeaders is used when Config.AllowedHeaders is empty.
	DefaultAllowedHeaders = []string{"Authorization", "Content-Type", "Idempotency-Key", "X-Request-Id", "X-Api-Key"}
	// AlwaysExposedHeaders are exposed to scripts in addition to Config.ExposedHeaders.
	AlwaysExposedHeaders = []string{"X-Request-Id", "RateLimit", "RateLimit-Policy", "Retry-After"}
)

// DefaultMaxAge is how long browsers may cache a preflight answer when Config.MaxAge is 0.
const DefaultMaxAge = 10 * time.Minute

// maxMaxAge bounds Config.MaxAge.
const maxMaxAge = 24 * time.Hour

// Config is the `cors` section of the gateway's YAML. The zero value allows no origin: CORS is
// off, preflights are still answered at the edge (204, no CORS headers).
type Config struct {
	// AllowedOrigins are exact origins ("https://shop.example.com", scheme://host[:port],
	// matched without regard to case), or the single entry "*" for any origin (not with
	// AllowCredentials). Default: none (CORS off).
	AllowedOrigins []string `yaml:"allowed_origins" json:"allowed_origins"`
	// AllowedMethods a preflight may ask for, HTTP tokens matched in upper case. Default:
	// DefaultAllowedMethods.
	AllowedMethods []string `yaml:"allowed_methods" json:"allowed_methods"`
	// AllowedHeaders a preflight may ask for, HTTP tokens matched without regard to case.
	// Default: DefaultAllowedHeaders.
	AllowedHeaders []string `yaml:"allowed_headers" json:"allowed_headers"`
	// ExposedHeaders scripts may read, in addition to AlwaysExposedHeaders. Default: none.
	ExposedHeaders []string `yaml:"exposed_headers" json:"exposed_headers"`
	// AllowCredentials lets browsers send cookies and Authorization. Default: false.
	AllowCredentials bool `yaml:"allow_credentials" json:"allow_credentials"`
	// MaxAge is how long a preflight answer may be cached, at most 24h. Default: DefaultMaxAge
	// (10 minutes).
	MaxAge time.Duration `yaml:"max_age" json:"max_age"`
}

// withDefaults returns cfg with every zero value replaced by its default, origins in lower
// case and methods in upper case (in new slices: the defaults are never modified), or an error
// naming every invalid value at once.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	origins := make([]string, 0, len(cfg.AllowedOrigins))
	for i, o := range cfg.AllowedOrigins {
		if o == "*" {
			origins = append(origins, o)
			continue
		}
		norm, err := normalizeOrigin(o)
		if err != nil {
			errs = append(errs, fmt.Errorf("allowed_origins[%d]: %w", i, err))
			continue
		}
		origins = append(origins, norm)
	}
	cfg.AllowedOrigins = origins
	if cfg.AllowCredentials && slices.Contains(origins, "*") {
		errs = append(errs, errors.New(`allowed_origins "*" cannot be combined with allow_credentials`))
	}
	if len(cfg.AllowedMethods) == 0 {
		cfg.AllowedMethods = DefaultAllowedMethods
	}
	errs = append(errs, checkTokens("allowed_methods", "method", cfg.AllowedMethods)...)
	methods := make([]string, len(cfg.AllowedMethods))
	for i, m := range cfg.AllowedMethods {
		methods[i] = strings.ToUpper(m)
	}
	cfg.AllowedMethods = methods
	if len(cfg.AllowedHeaders) == 0 {
		cfg.AllowedHeaders = DefaultAllowedHeaders
	}
	errs = append(errs, checkTokens("allowed_headers", "header", cfg.AllowedHeaders)...)
	errs = append(errs, checkTokens("exposed_headers", "header", cfg.ExposedHeaders)...)
	if cfg.MaxAge < 0 || cfg.MaxAge > maxMaxAge {
		errs = append(errs, fmt.Errorf("max_age %v out of range [0, 24h]", cfg.MaxAge))
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxAge
	}
	return cfg, errors.Join(errs...)
}

// normalizeOrigin checks that o is scheme://host[:port] and returns it in lower case.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(o, "/") {
		return "", fmt.Errorf("%q is not an origin (scheme://host[:port])", o)
	}
	return strings.ToLower(o), nil
}

// checkTokens returns an error for every value of the list field that is not an HTTP token.
func checkTokens(field, kind string, values []string) []error {
	var errs []error
	for i, v := range values {
		if !validToken(v) {
			errs = append(errs, fmt.Errorf("%s[%d]: invalid %s %q", field, i, kind, v))
		}
	}
	return errs
}

// validToken reports whether s is a non-empty HTTP token (RFC 9110 tchar).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return true
}

// Options carries what the process provides. Zero values are replaced by defaults.
type Options struct {
	// Logger is accepted like every stage's; the stage has nothing to log today. Default:
	// slog.Default().
	Logger *slog.Logger
	// Registerer for metrics (gateway_cors_preflights_total{result}). Default: none registered.
	Registerer prometheus.Registerer
}
