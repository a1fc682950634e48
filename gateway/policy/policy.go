// Package policy holds the effective policy of every RPC the gateway serves: one Route per
// google.api.http binding, resolved once at start-up (and at each reload) by gateway/routes from,
// weakest first, the built-in safe defaults, the YAML defaults, the proto options
// (gateway.v1.service_policy, then gateway.v1.policy) and the YAML overrides (per service, then
// per RPC). It also holds the one type of each policy value (RateLimit, Fallback, AuthMode) that
// the YAML, the protos and the stages share, with its validation and its defaults.
//
// Policy stages never parse protos or YAML: they read the *Route that the router stored in the
// request's context (FromContext).
package policy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"
)

// AuthMode says whether a caller must present a credential.
type AuthMode int

// The auth modes. The zero value is AuthRequired: a route with no policy is protected.
const (
	// AuthRequired: a valid credential is needed (the default).
	AuthRequired AuthMode = iota
	// AuthOptional: a credential is verified when sent; the call goes on without one.
	AuthOptional
	// AuthNone: public; no credential is needed.
	AuthNone
)

// ParseAuthMode reads an auth mode as the YAML spells it: "required", "optional" or "none".
func ParseAuthMode(s string) (AuthMode, error) {
	switch s {
	case "required":
		return AuthRequired, nil
	case "optional":
		return AuthOptional, nil
	case "none":
		return AuthNone, nil
	}
	return AuthRequired, fmt.Errorf("%q is not one of required, optional, none", s)
}

// String returns "required", "optional" or "none", as the YAML and `gateway routes` spell it.
func (m AuthMode) String() string {
	switch m {
	case AuthOptional:
		return "optional"
	case AuthNone:
		return "none"
	default:
		return "required"
	}
}

// RateLimit allows Requests per Per for each caller, with bursts up to Burst. It is the one type
// of a rate limit wherever one is written: the YAML (`defaults.rate_limit`, `routes.*.rate_limit`),
// the proto option (gateway.v1.policy rate_limit) and the resolved route. The zero value means
// "no limit".
type RateLimit struct {
	// Requests allowed per period; must be positive.
	Requests int `yaml:"requests"`
	// Per is the period; must be positive.
	Per time.Duration `yaml:"per"`
	// Burst is how many requests may arrive at once. Default: Requests, applied by Resolved
	// when the route table is built, so every limit a stage sees has Burst >= 1.
	Burst int `yaml:"burst"`
}

// Enabled reports whether the limit applies.
func (r RateLimit) Enabled() bool { return r.Requests > 0 && r.Per > 0 }

// Validate checks a written limit: positive requests and period, burst not negative. It
// reports every problem at once.
func (r RateLimit) Validate() error {
	var errs []error
	if r.Requests <= 0 {
		errs = append(errs, fmt.Errorf("requests: must be positive, got %d", r.Requests))
	}
	if r.Per <= 0 {
		errs = append(errs, fmt.Errorf("per: must be a positive duration, got %s", r.Per))
	}
	if r.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst: must not be negative, got %d", r.Burst))
	}
	return errors.Join(errs...)
}

// Resolved returns r with its default applied: Burst = Requests when unset.
func (r RateLimit) Resolved() RateLimit {
	if r.Burst == 0 {
		r.Burst = r.Requests
	}
	return r
}

// Fallback is a static response served while the upstream is unavailable or its circuit open.
// It is the one type of a fallback in the YAML (`routes.*.fallback`), the proto option and the
// resolved route.
type Fallback struct {
	// HTTPStatus of the response, 200 to 599. Default: 200, applied by Resolved.
	HTTPStatus int `yaml:"http_status"`
	// JSONBody is the response body; must be valid JSON. Required.
	JSONBody string `yaml:"json_body"`
}

// Validate checks a written fallback: a status in 200..599 (or 0, the default) and a JSON
// body. It reports every problem at once.
func (f Fallback) Validate() error {
	var errs []error
	if f.HTTPStatus != 0 && (f.HTTPStatus < 200 || f.HTTPStatus > 599) {
		errs = append(errs, fmt.Errorf("http_status: %d is not an HTTP status", f.HTTPStatus))
	}
	if !json.Valid([]byte(f.JSONBody)) {
		errs = append(errs, errors.New("json_body: not valid JSON"))
	}
	return errors.Join(errs...)
}

// Resolved returns f with its default applied: HTTPStatus 200 when unset.
func (f Fallback) Resolved() Fallback {
	if f.HTTPStatus == 0 {
		f.HTTPStatus = 200
	}
	return f
}

// Cache is a GET route's HTTP caching policy: the one type of it in the YAML
// (`routes.*.cache`), the proto option (gateway.v1.policy cache) and the resolved route. The
// zero value means the defaults: no gateway-side response cache, and max-age 0 for public
// routes (gateway/httpcache).
type Cache struct {
	// TTL is how long the gateway keeps a 200 answer of the route in its response cache.
	// Default: 0, no cache. Only GET routes that do not stream are cached.
	TTL time.Duration `yaml:"ttl"`
	// MaxAge is the max-age of Cache-Control on the answers of a public route (AuthNone), in
	// whole seconds. Default: 0, "public, max-age=0, must-revalidate". Other routes' answers
	// are "private, no-store" whatever it says.
	MaxAge time.Duration `yaml:"max_age"`
}

// Validate checks a written cache policy: durations not negative, max_age in whole seconds.
func (c Cache) Validate() error {
	var errs []error
	if c.TTL < 0 {
		errs = append(errs, fmt.Errorf("ttl: must not be negative, got %s", c.TTL))
	}
	if c.MaxAge < 0 || c.MaxAge%time.Second != 0 {
		errs = append(errs, fmt.Errorf("max_age: must be whole seconds, not negative, got %s", c.MaxAge))
	}
	return errors.Join(errs...)
}

// Policy is the effective policy of one RPC. Every field is resolved: no field means
// "inherit" here.
type Policy struct {
	// Auth is who may call. Default: AuthRequired.
	Auth AuthMode
	// Roles: the caller needs at least one of them; empty means any authenticated caller.
	Roles []string
	// RateLimit per caller. Default: the gateway's default limit.
	RateLimit RateLimit
	// Timeout bounds the upstream call. Default: the gateway's default timeout.
	Timeout time.Duration
	// Idempotent RPCs may be retried. Default: true for GET routes.
	Idempotent bool
	// Fallback served while the upstream is down; nil for none.
	Fallback *Fallback
	// AllowCIDRs, when not empty, admits only clients in these prefixes (in addition to the
	// global IP rules). Default: empty.
	AllowCIDRs []netip.Prefix
	// DenyCIDRs refuses clients in these prefixes (in addition to the global IP rules).
	DenyCIDRs []netip.Prefix
	// Delegates are the services (full gRPC service names) the route's service calls on the
	// caller's behalf: the passport signed for the call names them in its aud beside the
	// service called (gateway/passport). Default: none.
	Delegates []string
	// Cache is the route's HTTP caching policy. Default: the zero Cache (no response cache,
	// max-age 0).
	Cache Cache
}

// Audience returns the aud of the passport for a call of r: its service, then its delegates
// (each once, the service not repeated).
func (r *Route) Audience() []string {
	aud := make([]string, 0, 1+len(r.Policy.Delegates))
	aud = append(aud, r.Service)
	for _, d := range r.Policy.Delegates {
		if !slices.Contains(aud, d) {
			aud = append(aud, d)
		}
	}
	return aud
}

// Route is one HTTP binding of an RPC with its effective policy.
type Route struct {
	// HTTPMethod is the binding's method ("GET", "POST", ...).
	HTTPMethod string
	// Path is the binding's template as the proto declares it ("/v1/orders/{id}:cancel").
	Path string
	// RPC is the full gRPC method name ("/shop.order.v1.OrderService/CancelOrder").
	RPC string
	// Service is the full gRPC service name ("shop.order.v1.OrderService").
	Service string
	// ServerStreaming is true for RPCs that answer with a stream.
	ServerStreaming bool
	// Policy is the effective policy.
	Policy Policy
}

type ctxKey struct{}

// NewContext returns a copy of ctx carrying the route of the request.
func NewContext(ctx context.Context, r *Route) context.Context {
	return context.WithValue(ctx, ctxKey{}, r)
}

// ContextKey returns the key under which NewContext stores the route. A context type that
// carries the route itself (gateway/edge's per-request State, which saves an allocation per
// request) answers Value(ContextKey()) with the *Route; FromContext reads both the same way.
func ContextKey() any { return ctxKey{} }

// FromContext returns the route stored by the router, or nil outside a routed request.
func FromContext(ctx context.Context) *Route {
	r, _ := ctx.Value(ctxKey{}).(*Route)
	return r
}
