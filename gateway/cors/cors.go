package cors

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/gateway/metrics"
)

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

// New validates cfg (every invalid value is reported at once) and builds the stage. Its errors
// start with "creating cors: ".
func New(cfg Config, opts Options) (*CORS, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating cors: %w", err)
	}
	s := &CORS{
		origins:     make(map[string]struct{}, len(cfg.AllowedOrigins)),
		methods:     make(map[string]struct{}, len(cfg.AllowedMethods)),
		headers:     make(map[string]struct{}, len(cfg.AllowedHeaders)),
		credentials: cfg.AllowCredentials,
	}
	for _, o := range cfg.AllowedOrigins {
		if o == "*" {
			s.anyOrigin = true
			continue
		}
		s.origins[o] = struct{}{}
	}
	for _, m := range cfg.AllowedMethods {
		s.methods[m] = struct{}{}
	}
	for _, h := range cfg.AllowedHeaders {
		s.headers[strings.ToLower(h)] = struct{}{}
	}
	exposed := slices.Clone(AlwaysExposedHeaders)
	for _, h := range cfg.ExposedHeaders {
		if !slices.ContainsFunc(exposed, func(e string) bool { return strings.EqualFold(e, h) }) {
			exposed = append(exposed, h)
		}
	}
	s.allowMethods = []string{strings.Join(cfg.AllowedMethods, ", ")}
	s.allowHeaders = []string{strings.Join(cfg.AllowedHeaders, ", ")}
	s.exposeHeaders = []string{strings.Join(exposed, ", ")}
	s.maxAge = []string{strconv.Itoa(int(cfg.MaxAge / time.Second))}
	s.varyOrigin = []string{"Origin"}
	s.varyPreflight = []string{"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"}
	s.star = []string{"*"}
	s.trueValue = []string{"true"}

	preflights := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "gateway_cors_preflights_total",
		Help: "CORS preflights answered at the edge, by result (allowed or refused).",
	}, []string{"result"})
	if opts.Registerer != nil {
		if preflights, err = metrics.RegisterOrReuse(opts.Registerer, preflights); err != nil {
			return nil, fmt.Errorf("creating cors: %w", err)
		}
	}
	s.preflightAllowed = preflights.WithLabelValues("allowed")
	s.preflightRefused = preflights.WithLabelValues("refused")
	return s, nil
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
