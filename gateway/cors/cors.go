package cors

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/gateway/metrics"
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
	// AllowedOrigins are exact origins ("https://shop.example.com"), or the single entry "*" for
	// any origin (not with AllowCredentials). Default: none.
	AllowedOrigins []string `yaml:"allowed_origins" json:"allowed_origins"`
	// AllowedMethods a preflight may ask for. Default: DefaultAllowedMethods.
	AllowedMethods []string `yaml:"allowed_methods" json:"allowed_methods"`
	// AllowedHeaders a preflight may ask for. Default: DefaultAllowedHeaders.
	AllowedHeaders []string `yaml:"allowed_headers" json:"allowed_headers"`
	// ExposedHeaders scripts may read, in addition to AlwaysExposedHeaders. Default: none.
	ExposedHeaders []string `yaml:"exposed_headers" json:"exposed_headers"`
	// AllowCredentials lets browsers send cookies and Authorization. Default: false.
	AllowCredentials bool `yaml:"allow_credentials" json:"allow_credentials"`
	// MaxAge is how long a preflight answer may be cached, at most 24h. Default: DefaultMaxAge.
	MaxAge time.Duration `yaml:"max_age" json:"max_age"`
}

// Options carries what the process provides. Zero values are replaced by defaults.
type Options struct {
	// Logger for configuration notes. Default: slog.Default().
	Logger *slog.Logger
	// Registerer for metrics (gateway_cors_preflights_total{result}). Default: none registered.
	Registerer prometheus.Registerer
}

// CORS is the cors stage. It is immutable and safe for concurrent use; a reload builds a new one.
type CORS struct {
	anyOrigin   bool
	origins     map[string]struct{}
	methods     map[string]struct{}
	headers     map[string]struct{} // lower case
	credentials bool

	// Precomputed header values, shared by every response (never appended to in place).
	allowMethods, allowHeaders, exposeHeaders, maxAge []string
	varyOrigin, varyPreflight, star, trueValue        []string

	preflightAllowed, preflightRefused prometheus.Counter
}

// New validates cfg and builds the stage.
func New(cfg Config, opts Options) (*CORS, error) {
	s := &CORS{
		origins: make(map[string]struct{}, len(cfg.AllowedOrigins)),
		methods: make(map[string]struct{}),
		headers: make(map[string]struct{}),
	}
	var errs []error
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			s.anyOrigin = true
			continue
		}
		norm, err := normalizeOrigin(o)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.origins[norm] = struct{}{}
	}
	if s.anyOrigin && cfg.AllowCredentials {
		errs = append(errs, errors.New(`allowed_origins "*" cannot be combined with allow_credentials`))
	}
	if cfg.MaxAge < 0 || cfg.MaxAge > maxMaxAge {
		errs = append(errs, fmt.Errorf("max_age %v out of range [0, 24h]", cfg.MaxAge))
	}
	methods := cfg.AllowedMethods
	if len(methods) == 0 {
		methods = DefaultAllowedMethods
	}
	for i, m := range methods {
		if !validToken(m) {
			errs = append(errs, fmt.Errorf("allowed_methods[%d]: invalid method %q", i, m))
		}
		s.methods[strings.ToUpper(m)] = struct{}{}
	}
	headers := cfg.AllowedHeaders
	if len(headers) == 0 {
		headers = DefaultAllowedHeaders
	}
	for i, h := range headers {
		if !validToken(h) {
			errs = append(errs, fmt.Errorf("allowed_headers[%d]: invalid header %q", i, h))
		}
		s.headers[strings.ToLower(h)] = struct{}{}
	}
	exposed := slices.Clone(AlwaysExposedHeaders)
	for i, h := range cfg.ExposedHeaders {
		if !validToken(h) {
			errs = append(errs, fmt.Errorf("exposed_headers[%d]: invalid header %q", i, h))
			continue
		}
		if !slices.ContainsFunc(exposed, func(e string) bool { return strings.EqualFold(e, h) }) {
			exposed = append(exposed, h)
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("creating cors: %w", errors.Join(errs...))
	}
	maxAge := cfg.MaxAge
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	s.credentials = cfg.AllowCredentials
	s.allowMethods = []string{strings.ToUpper(strings.Join(methods, ", "))}
	s.allowHeaders = []string{strings.Join(headers, ", ")}
	s.exposeHeaders = []string{strings.Join(exposed, ", ")}
	s.maxAge = []string{strconv.Itoa(int(maxAge / time.Second))}
	s.varyOrigin = []string{"Origin"}
	s.varyPreflight = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
	s.star = []string{"*"}
	s.trueValue = []string{"true"}

	preflights := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_cors_preflights_total",
		Help: "CORS preflights answered at the edge, by result (allowed or refused).",
	}, []string{"result"})
	if opts.Registerer != nil {
		var err error
		if preflights, err = metrics.RegisterOrReuse(opts.Registerer, preflights); err != nil {
			return nil, fmt.Errorf("creating cors: %w", err)
		}
	}
	s.preflightAllowed = preflights.WithLabelValues("allowed")
	s.preflightRefused = preflights.WithLabelValues("refused")
	return s, nil
}

// normalizeOrigin checks that o is scheme://host[:port] and returns it in lower case.
func normalizeOrigin(o string) (string, error) {
	u, err := url.Parse(o)
	if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") ||
		u.RawQuery != "" || u.Fragment != "" || u.User != nil || strings.HasSuffix(o, "/") {
		return "", fmt.Errorf("allowed_origins: %q is not an origin (scheme://host[:port])", o)
	}
	return strings.ToLower(o), nil
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

// enabled reports whether any origin is allowed.
func (s *CORS) enabled() bool { return s.anyOrigin || len(s.origins) > 0 }

// originAllowed reports whether origin may use the API.
func (s *CORS) originAllowed(origin string) bool {
	if s.anyOrigin {
		return true
	}
	if _, ok := s.origins[origin]; ok {
		return true
	}
	lower := strings.ToLower(origin)
	if lower == origin {
		return false
	}
	_, ok := s.origins[lower]
	return ok
}

// Middleware wraps next with the stage. Preflights are answered here; other requests go on to
// next with the CORS headers set.
func (s *CORS) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		origin := r.Header.Get("Origin")
		if r.Method == http.MethodOptions && origin != "" && r.Header.Get("Access-Control-Request-Method") != "" {
			s.preflight(w, r, origin)
			return
		}
		if !s.enabled() {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		addVary(h, s.varyOrigin)
		if origin != "" && s.originAllowed(origin) {
			s.setAllowOrigin(h, origin)
			h["Access-Control-Expose-Headers"] = s.exposeHeaders
		}
		next.ServeHTTP(w, r)
	})
}

// preflight answers a preflight with 204, with CORS headers only when everything asked for is
// allowed.
func (s *CORS) preflight(w http.ResponseWriter, r *http.Request, origin string) {
	h := w.Header()
	if s.enabled() {
		addVary(h, s.varyPreflight)
	}
	if s.enabled() && s.originAllowed(origin) && s.methodAllowed(r.Header.Get("Access-Control-Request-Method")) &&
		s.headersAllowed(r.Header.Values("Access-Control-Request-Headers")) {
		s.setAllowOrigin(h, origin)
		h["Access-Control-Allow-Methods"] = s.allowMethods
		h["Access-Control-Allow-Headers"] = s.allowHeaders
		h["Access-Control-Max-Age"] = s.maxAge
		s.preflightAllowed.Inc()
	} else {
		s.preflightRefused.Inc()
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *CORS) setAllowOrigin(h http.Header, origin string) {
	if s.anyOrigin && !s.credentials {
		h["Access-Control-Allow-Origin"] = s.star
		return
	}
	h["Access-Control-Allow-Origin"] = []string{origin}
	if s.credentials {
		h["Access-Control-Allow-Credentials"] = s.trueValue
	}
}

func (s *CORS) methodAllowed(m string) bool {
	_, ok := s.methods[m]
	return ok
}

// headersAllowed reports whether every header of the Access-Control-Request-Headers lines is
// allowed.
func (s *CORS) headersAllowed(lines []string) bool {
	for _, line := range lines {
		for name := range strings.SplitSeq(line, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if name == "" {
				continue
			}
			if _, ok := s.headers[name]; !ok {
				return false
			}
		}
	}
	return true
}

// addVary adds values to Vary without touching the shared slice.
func addVary(h http.Header, values []string) {
	if len(h["Vary"]) == 0 {
		h["Vary"] = values
		return
	}
	h["Vary"] = append(slices.Clip(h["Vary"]), values...)
}

// Close releases what the stage holds. The stage holds nothing; Close is safe to call twice.
func (s *CORS) Close() error { return nil }
