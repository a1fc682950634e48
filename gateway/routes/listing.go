package routes

import (
	"encoding/json"
	"net/http"
	"net/netip"
	"sort"

	"github.com/acme/shopgate/gateway/httperror"
	"github.com/acme/shopgate/gateway/policy"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Entry is one route as `gateway routes` and GET /admin/routes show it.
type Entry struct {
	// Method is the HTTP method ("GET").
	Method string `json:"method"`
	// Path is the template as the proto declares it ("/v1/orders/{id}:cancel").
	Path string `json:"path"`
	// RPC is the full gRPC method name ("/shop.order.v1.OrderService/CancelOrder").
	RPC string `json:"rpc"`
	// Upstream says whether the configuration names addresses for the route's service; a
	// route without one answers 503.
	Upstream bool `json:"upstream"`
	// Policy holds each resolved policy field, by the name the proto and the YAML give it.
	Policy map[string]Value `json:"policy"`
}

// Value is a resolved policy value and the layer it came from.
type Value struct {
	// Value is the field's value as JSON shows it (durations as Go durations, "2s"); null when
	// unset (no fallback, for example).
	Value any `json:"value"`
	// From is the layer that set it.
	From Layer `json:"from"`
}

// Entries lists t's routes in Routes' order; hasUpstream reports whether a service has
// upstream addresses.
func (t *Table) Entries(hasUpstream func(service string) bool) []Entry {
	out := make([]Entry, 0, len(t.routes))
	for _, r := range t.routes {
		values := policyValues(r.Policy)
		e := Entry{Method: r.HTTPMethod, Path: r.Path, RPC: r.RPC, Upstream: hasUpstream(r.Service), Policy: map[string]Value{}}
		for name, layer := range t.Provenance(r) {
			e.Policy[name] = Value{Value: values[name], From: layer}
		}
		out = append(out, e)
	}
	return out
}

// FieldNames returns the policy field names of e in a stable order.
func (e Entry) FieldNames() []string {
	names := make([]string, 0, len(e.Policy))
	for n := range e.Policy {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Handler serves the route table as JSON (GET; HEAD too); it is the body of GET /admin/routes,
// whose caller the gateway authorizes before.
func (t *Table) Handler(hasUpstream func(service string) bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httperror.WriteWithStatus(w, http.StatusMethodNotAllowed, status.New(codes.Unimplemented, "method not allowed on this path"))
			return
		}
		body, err := json.Marshal(struct {
			Routes []Entry `json:"routes"`
		}{t.Entries(hasUpstream)})
		if err != nil {
			httperror.Write(w, status.New(codes.Internal, "internal error"))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "private, no-store")
		_, _ = w.Write(append(body, '\n'))
	})
}

// policyValues renders each field of p as JSON shows it, by its proto/YAML name. A field a
// layer can set but missing here shows as null beside its layer.
func policyValues(p policy.Policy) map[string]any {
	v := map[string]any{
		"auth":        p.Auth.String(),
		"roles":       nonNil(p.Roles),
		"timeout":     p.Timeout.String(),
		"idempotent":  p.Idempotent,
		"delegates":   nonNil(p.Delegates),
		"allow_cidrs": prefixStrings(p.AllowCIDRs),
		"deny_cidrs":  prefixStrings(p.DenyCIDRs),
		"rate_limit":  nil,
		"fallback":    nil,
		"cache":       map[string]any{"ttl": p.Cache.TTL.String(), "max_age": p.Cache.MaxAge.String()},
	}
	if p.RateLimit.Enabled() {
		v["rate_limit"] = map[string]any{"requests": p.RateLimit.Requests, "per": p.RateLimit.Per.String(), "burst": p.RateLimit.Burst}
	}
	if p.Fallback != nil {
		v["fallback"] = map[string]any{"http_status": p.Fallback.HTTPStatus, "json_body": p.Fallback.JSONBody}
	}
	return v
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func prefixStrings(ps []netip.Prefix) []string {
	out := make([]string, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.String())
	}
	return out
}
