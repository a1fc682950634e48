package apicheck

import (
	"fmt"
	"sort"
	"strings"

	"github.com/acme/shopgate/gateway/routes"
	gatewayv1 "github.com/acme/shopgate/gen/gateway/v1"
	"google.golang.org/genproto/googleapis/api/annotations"
)

// Problem is one thing Check or Diff refuses.
type Problem struct {
	// Pos is where it is, "file:line" (the file as given to Compile, under Source.Dir).
	Pos string
	// Message says what is wrong.
	Message string
	// RPC is the RPC concerned ("shop.order.v1.OrderService/GetOrder"), if any.
	RPC string
	// Other names the RPC it conflicts with and where, for a conflict between two.
	Other, OtherPos string
}

// String renders the problem as one line: "file:line: message (rpc A vs rpc B at file:line)",
// or "file:line: rpc A: message" for a problem of one RPC.
func (p Problem) String() string {
	switch {
	case p.Other != "":
		return fmt.Sprintf("%s: %s (rpc %s vs rpc %s at %s)", p.Pos, p.Message, p.RPC, p.Other, p.OtherPos)
	case p.RPC != "":
		return fmt.Sprintf("%s: rpc %s: %s", p.Pos, p.RPC, p.Message)
	}
	return fmt.Sprintf("%s: %s", p.Pos, p.Message)
}

// The field numbers of the options messages in descriptor.proto, for source positions.
const (
	serviceOptionsField = 3 // ServiceDescriptorProto.options
	methodOptionsField  = 4 // MethodDescriptorProto.options
)

// binding is one google.api.http binding of an RPC.
type binding struct {
	method, path string
	tpl          template
	rpc          string
	svc          string
	pos          string
}

// Check refuses, in the checked files of s:
//   - two bindings with the same HTTP method that can match the same request (template.overlaps:
//     "/v1/items/{sku}" and "/v1/items/{item_sku}"; "/v1/items/{id}" and "/v1/items/special"),
//     additional_bindings included, a verbless binding declared after a custom method whose
//     requests it would take (collisions), and a template grpc-gateway would not parse;
//   - a policy that contradicts itself once the service policy and the method's are combined
//     (auth NONE with roles; auth OPTIONAL with roles, where a caller without a credential is
//     refused anyway), and a role no file declares with the gateway.v1.roles file option;
//   - a gateway.v1.policy on an RPC with no google.api.http route, and a service_policy on a
//     service with none, which never apply;
//   - invalid values start-up would refuse (routes.ValidateProtoPolicy: durations, rate limits,
//     fallbacks), and delegates naming a service that none of the compiled protos declares.
//
// A rate limit's burst below its requests is not refused: it is a legitimate token bucket
// (requests per period on average, at most burst at once). The problems come back sorted by
// position.
func Check(s *Schema) []Problem {
	var probs []Problem
	known := s.knownServices()
	declared := s.declaredRoles()
	var all []binding
	for _, sd := range s.Services() {
		svcPolicy := servicePolicy(sd)
		svcPos := s.optionPos(sd, serviceOptionsField, gatewayv1.E_ServicePolicy.TypeDescriptor().Number())
		if svcPolicy != nil {
			probs = append(probs, s.checkValues(svcPolicy, string(sd.FullName()), svcPos, known)...)
		}
		routed := false
		methods := sd.Methods()
		for i := range methods.Len() {
			md := methods.Get(i)
			rpc := string(sd.FullName()) + "/" + string(md.Name())
			rule := httpRule(md)
			mp := methodPolicy(md)
			mpPos := s.optionPos(md, methodOptionsField, gatewayv1.E_Policy.TypeDescriptor().Number())
			if rule == nil {
				if mp != nil {
					probs = append(probs, Problem{Pos: mpPos, RPC: rpc, Message: "has a gateway.v1.policy but no google.api.http route: the policy never applies"})
				}
				continue
			}
			routed = true
			httpPos := s.optionPos(md, methodOptionsField, annotations.E_Http.TypeDescriptor().Number())
			for _, b := range ruleBindings(rule) {
				tpl, err := parseTemplate(b.path)
				if err != nil {
					probs = append(probs, Problem{Pos: httpPos, RPC: rpc, Message: err.Error()})
					continue
				}
				b.tpl, b.rpc, b.svc, b.pos = tpl, rpc, string(sd.FullName()), httpPos
				all = append(all, b)
			}
			if mp != nil {
				probs = append(probs, s.checkValues(mp, rpc, mpPos, known)...)
			}
			// The combination, as routes.Build resolves it before the YAML.
			pos := svcPos
			if mp != nil {
				pos = mpPos
			}
			auth, roles := combinedAuth(svcPolicy, mp)
			switch {
			case auth == gatewayv1.AuthMode_AUTH_MODE_NONE && len(roles) > 0:
				probs = append(probs, Problem{Pos: pos, RPC: rpc, Message: fmt.Sprintf("auth AUTH_MODE_NONE with roles %s: a public RPC checks no role", strings.Join(roles, ","))})
			case auth == gatewayv1.AuthMode_AUTH_MODE_OPTIONAL && len(roles) > 0:
				probs = append(probs, Problem{Pos: pos, RPC: rpc, Message: fmt.Sprintf("auth AUTH_MODE_OPTIONAL with roles %s: a caller without a credential is refused anyway; say AUTH_MODE_REQUIRED", strings.Join(roles, ","))})
			}
		}
		if svcPolicy != nil && !routed {
			probs = append(probs, Problem{Pos: svcPos, Message: fmt.Sprintf("service %s has a gateway.v1.service_policy but no RPC with a google.api.http route: the policy never applies", sd.FullName())})
		}
		// Roles, where they are written.
		probs = append(probs, undeclaredRoles(svcPolicy, string(sd.FullName()), svcPos, declared)...)
		for i := range methods.Len() {
			md := methods.Get(i)
			probs = append(probs, undeclaredRoles(methodPolicy(md), string(sd.FullName())+"/"+string(md.Name()),
				s.optionPos(md, methodOptionsField, gatewayv1.E_Policy.TypeDescriptor().Number()), declared)...)
		}
	}
	probs = append(probs, collisions(all)...)
	sortProblems(probs)
	return probs
}

// collisions reports each pair of bindings that can match the same request, at the later one:
// two with the same method that overlap, and a verbless binding whose last variable takes a
// custom method's requests ("/v1/items/{id}" and "/v1/items/{id}:watch") when grpc-gateway
// would try it first. Within a service, bindings are registered in proto order and the newest
// is tried first, so the custom method must come after; across services the order is the
// binary's, so such a pair is always reported.
func collisions(all []binding) []Problem {
	var probs []Problem
	for j := range all {
		for i := range j {
			a, b := all[i], all[j]
			if a.method != b.method {
				continue
			}
			var msg string
			switch {
			case a.tpl.overlaps(b.tpl):
				msg = fmt.Sprintf("%s %s can match the same requests as %s %s", b.method, b.path, a.method, a.path)
			case b.tpl.absorbsVerbOf(a.tpl):
				msg = fmt.Sprintf("%s %s takes the requests of %s %s (its last variable matches \"x:%s\", and grpc-gateway tries it first): declare the custom method after it",
					b.method, b.path, a.method, a.path, a.tpl.verb)
			case a.svc != b.svc && a.tpl.absorbsVerbOf(b.tpl):
				msg = fmt.Sprintf("%s %s may be taken by %s %s of another service (its last variable matches \"x:%s\" if it is registered after)",
					b.method, b.path, a.method, a.path, b.tpl.verb)
			default:
				continue
			}
			probs = append(probs, Problem{Pos: b.pos, Message: msg, RPC: b.rpc, Other: a.rpc, OtherPos: a.pos})
		}
	}
	return probs
}

// checkValues reports what start-up would refuse in pp, and delegates no compiled proto declares.
func (s *Schema) checkValues(pp *gatewayv1.Policy, owner, pos string, known map[string]bool) []Problem {
	var probs []Problem
	if err := routes.ValidateProtoPolicy(pp); err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			probs = append(probs, Problem{Pos: pos, RPC: owner, Message: line})
		}
	}
	for _, d := range pp.GetDelegates() {
		if !known[d] {
			probs = append(probs, Problem{Pos: pos, RPC: owner, Message: fmt.Sprintf("delegates: %q is not a service of the compiled protos", d)})
		}
	}
	return probs
}

func undeclaredRoles(pp *gatewayv1.Policy, owner, pos string, declared map[string]bool) []Problem {
	var probs []Problem
	for _, r := range pp.GetRoles() {
		if !declared[r] {
			probs = append(probs, Problem{Pos: pos, RPC: owner, Message: fmt.Sprintf("role %q is not declared: no file has option (gateway.v1.roles) = %q", r, r)})
		}
	}
	return probs
}

// combinedAuth is the auth mode and roles of a method after its service policy (unset: 0, nil).
func combinedAuth(svc, method *gatewayv1.Policy) (gatewayv1.AuthMode, []string) {
	var auth gatewayv1.AuthMode
	var roles []string
	for _, p := range []*gatewayv1.Policy{svc, method} {
		if a := p.GetAuth(); a != gatewayv1.AuthMode_AUTH_MODE_UNSPECIFIED {
			auth = a
		}
		if len(p.GetRoles()) > 0 {
			roles = p.GetRoles()
		}
	}
	return auth, roles
}

func sortProblems(probs []Problem) {
	sort.SliceStable(probs, func(i, j int) bool { return lessPos(probs[i].Pos, probs[j].Pos) })
}

// lessPos orders "file:line" by file, then line as a number.
func lessPos(a, b string) bool {
	fa, la := splitPos(a)
	fb, lb := splitPos(b)
	if fa != fb {
		return fa < fb
	}
	return la < lb
}

func splitPos(p string) (string, int) {
	i := strings.LastIndexByte(p, ':')
	if i < 0 {
		return p, 0
	}
	var n int
	if _, err := fmt.Sscanf(p[i+1:], "%d", &n); err != nil {
		return p, 0
	}
	return p[:i], n
}
