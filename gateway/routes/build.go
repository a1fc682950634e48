package routes

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/ipfilter"
	"github.com/acme/shopgate/gateway/policy"
	gatewayv1 "github.com/acme/shopgate/gen/gateway/v1"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// Build resolves the route table of services (their google.api.http bindings) under cfg's
// defaults and overrides. cfg must come from config.Parse or Load, which validated its YAML
// overrides; the proto options are validated here. An override naming a service or RPC that is
// not among services, an invalid proto policy or two services binding the same method and path
// are errors, all reported at once.
func Build(cfg *config.Config, services []protoreflect.ServiceDescriptor) (*Table, error) {
	t := &Table{byKey: map[string]*policy.Route{}, def: defaultRoute(cfg), prov: map[*policy.Route]Provenance{}}
	known := map[string]bool{}
	var errs []error
	for _, sd := range services {
		svc := string(sd.FullName())
		known[svc] = true
		svcPolicy, _ := proto.GetExtension(sd.Options().(*descriptorpb.ServiceOptions), gatewayv1.E_ServicePolicy).(*gatewayv1.Policy)
		methods := sd.Methods()
		for i := range methods.Len() {
			md := methods.Get(i)
			rpc := svc + "/" + string(md.Name())
			known[rpc] = true
			opts, _ := md.Options().(*descriptorpb.MethodOptions)
			rule, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
			if rule == nil {
				continue
			}
			methodPolicy, _ := proto.GetExtension(opts, gatewayv1.E_Policy).(*gatewayv1.Policy)
			for _, b := range bindings(rule) {
				r := &policy.Route{
					HTTPMethod:      b.method,
					Path:            b.path,
					RPC:             "/" + rpc,
					Service:         svc,
					ServerStreaming: md.IsStreamingServer(),
				}
				prov, err := resolve(r, cfg, svcPolicy, methodPolicy)
				if err != nil {
					errs = append(errs, fmt.Errorf("route %s: %w", describe(r), err))
					continue
				}
				key := Key(r.HTTPMethod, NormalizeTemplate(r.Path))
				if prev, dup := t.byKey[key]; dup {
					errs = append(errs, fmt.Errorf("route %s: binds the same method and path as %s", describe(r), prev.RPC))
					continue
				}
				t.byKey[key] = r
				t.prov[r] = prov
				t.routes = append(t.routes, r)
				t.match = append(t.match, newMatcher(r.HTTPMethod, r.Path))
			}
		}
	}
	for _, key := range sortedKeys(cfg.Routes) {
		if !known[key] {
			errs = append(errs, fmt.Errorf("routes: %q names no served service or RPC (want pkg.Service or pkg.Service/Method)", key))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.SliceStable(t.routes, func(i, j int) bool { return t.routes[i].RPC < t.routes[j].RPC })
	return t, nil
}

type binding struct{ method, path string }

func bindings(rule *annotations.HttpRule) []binding {
	var out []binding
	add := func(r *annotations.HttpRule) {
		switch p := r.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			out = append(out, binding{http.MethodGet, p.Get})
		case *annotations.HttpRule_Put:
			out = append(out, binding{http.MethodPut, p.Put})
		case *annotations.HttpRule_Post:
			out = append(out, binding{http.MethodPost, p.Post})
		case *annotations.HttpRule_Delete:
			out = append(out, binding{http.MethodDelete, p.Delete})
		case *annotations.HttpRule_Patch:
			out = append(out, binding{http.MethodPatch, p.Patch})
		case *annotations.HttpRule_Custom:
			out = append(out, binding{strings.ToUpper(p.Custom.GetKind()), p.Custom.GetPath()})
		}
	}
	add(rule)
	for _, r := range rule.GetAdditionalBindings() {
		add(r)
	}
	return out
}

// resolve applies the layers to r, weakest first, and returns which layer set each field.
func resolve(r *policy.Route, cfg *config.Config, svcPolicy, methodPolicy *gatewayv1.Policy) (Provenance, error) {
	// 1+2. built-in safe default, then the YAML defaults (already defaulted by config).
	r.Policy = defaultRoute(cfg).Policy
	r.Policy.Idempotent = r.HTTPMethod == http.MethodGet
	prov := defaultProvenance()
	// 3. proto service policy.
	if err := applyProto(&r.Policy, svcPolicy); err != nil {
		return nil, fmt.Errorf("gateway.v1.service_policy: %w", err)
	}
	prov.setProto(svcPolicy, LayerProtoService)
	// 4. proto method policy.
	if err := applyProto(&r.Policy, methodPolicy); err != nil {
		return nil, fmt.Errorf("gateway.v1.policy: %w", err)
	}
	prov.setProto(methodPolicy, LayerProtoMethod)
	// 5. YAML service override.
	if o, ok := cfg.Routes[r.Service]; ok {
		applyOverride(&r.Policy, o)
		prov.setOverride(o, LayerYAMLService)
	}
	// 6. YAML RPC override.
	if o, ok := cfg.Routes[strings.TrimPrefix(r.RPC, "/")]; ok {
		applyOverride(&r.Policy, o)
		prov.setOverride(o, LayerYAMLRPC)
	}
	return prov, nil
}

// ValidateProtoPolicy checks a gateway.v1.policy or service_policy option the way Build does
// (durations, rate limit, fallback, the form of delegates), reporting every problem at once,
// so that `gateway check` refuses what start-up would.
func ValidateProtoPolicy(pp *gatewayv1.Policy) error {
	var p policy.Policy
	return applyProto(&p, pp)
}

// applyProto applies a proto policy option; it is where such an option is validated (every
// problem at once).
func applyProto(p *policy.Policy, pp *gatewayv1.Policy) error {
	if pp == nil {
		return nil
	}
	var errs []error
	switch pp.GetAuth() {
	case gatewayv1.AuthMode_AUTH_MODE_NONE:
		p.Auth = policy.AuthNone
	case gatewayv1.AuthMode_AUTH_MODE_OPTIONAL:
		p.Auth = policy.AuthOptional
	case gatewayv1.AuthMode_AUTH_MODE_REQUIRED:
		p.Auth = policy.AuthRequired
	}
	if len(pp.GetRoles()) > 0 {
		p.Roles = append([]string(nil), pp.GetRoles()...)
	}
	if rl := pp.GetRateLimit(); rl != nil {
		per, err := time.ParseDuration(rl.GetPer())
		if err != nil {
			errs = append(errs, fmt.Errorf("rate_limit.per: %q is not a duration", rl.GetPer()))
		}
		limit := policy.RateLimit{Requests: int(rl.GetRequests()), Per: per, Burst: int(rl.GetBurst())}
		if err := limit.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("rate_limit: %w", err))
		}
		p.RateLimit = limit.Resolved()
	}
	if s := pp.GetTimeout(); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("timeout: %q is not a positive duration", s))
		}
		p.Timeout = d
	}
	if pp.Idempotent != nil {
		p.Idempotent = pp.GetIdempotent()
	}
	if ds := pp.GetDelegates(); len(ds) > 0 {
		for _, d := range ds {
			if !config.ValidServiceName(d) {
				errs = append(errs, fmt.Errorf("delegates: %q is not a full gRPC service name (pkg.Service)", d))
			}
		}
		p.Delegates = append([]string(nil), ds...)
	}
	if c := pp.GetCache(); c != nil {
		var cache policy.Cache
		var err error
		if s := c.GetTtl(); s != "" {
			if cache.TTL, err = time.ParseDuration(s); err != nil {
				errs = append(errs, fmt.Errorf("cache.ttl: %q is not a duration", s))
			}
		}
		if s := c.GetMaxAge(); s != "" {
			if cache.MaxAge, err = time.ParseDuration(s); err != nil {
				errs = append(errs, fmt.Errorf("cache.max_age: %q is not a duration", s))
			}
		}
		if err := cache.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("cache: %w", err))
		}
		p.Cache = cache
	}
	if f := pp.GetFallback(); f != nil {
		fb := policy.Fallback{HTTPStatus: int(f.GetHttpStatus()), JSONBody: f.GetJsonBody()}
		if err := fb.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("fallback: %w", err))
		}
		fb = fb.Resolved()
		p.Fallback = &fb
	}
	return errors.Join(errs...)
}

// applyOverride applies a YAML override, which config.Parse validated (RouteOverride.Validate):
// nothing here can fail.
func applyOverride(p *policy.Policy, o config.RouteOverride) {
	if o.Auth != nil {
		p.Auth, _ = policy.ParseAuthMode(*o.Auth)
	}
	if o.Roles != nil {
		p.Roles = append([]string{}, o.Roles...)
	}
	if o.RateLimit != nil {
		p.RateLimit = o.RateLimit.Resolved()
	}
	if o.Timeout != nil {
		p.Timeout = *o.Timeout
	}
	if o.Idempotent != nil {
		p.Idempotent = *o.Idempotent
	}
	if o.Fallback != nil {
		fb := o.Fallback.Resolved()
		p.Fallback = &fb
	}
	if o.Delegates != nil {
		p.Delegates = append([]string{}, o.Delegates...)
	}
	if o.Cache != nil {
		p.Cache = *o.Cache
	}
	if o.AllowCIDRs != nil {
		p.AllowCIDRs = prefixes("allow_cidrs", o.AllowCIDRs)
	}
	if o.DenyCIDRs != nil {
		p.DenyCIDRs = prefixes("deny_cidrs", o.DenyCIDRs)
	}
}

// prefixes parses CIDRs already checked by config.RouteOverride.Validate, with the parser of
// the global rules (ipfilter.ParsePrefixes), so that both accept and mean the same spellings.
func prefixes(field string, cidrs []string) []netip.Prefix {
	out, _ := ipfilter.ParsePrefixes(field, cidrs)
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
