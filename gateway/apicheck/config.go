package apicheck

import (
	"fmt"
	"strings"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/routes"
)

// CheckConfig checks an operator's configuration (already parsed, so its own values are valid)
// against the protos of s: what routes.Build refuses at start-up (an override naming no RPC, an
// invalid proto policy), and, on the resolved routes, auth none or optional with roles, a role
// no proto file declares and delegates no proto declares. Problems are positioned at path (the
// YAML file; its lines are not tracked).
func CheckConfig(s *Schema, cfg *config.Config, path string) []Problem {
	var probs []Problem
	table, err := routes.Build(cfg, s.Services())
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			probs = append(probs, Problem{Pos: path, Message: line})
		}
		return probs
	}
	known, declared := s.knownServices(), s.declaredRoles()
	seen := map[string]bool{}
	for _, r := range table.Routes() {
		rpc := strings.TrimPrefix(r.RPC, "/")
		if seen[rpc] { // one report per RPC, not per binding
			continue
		}
		seen[rpc] = true
		add := func(format string, args ...any) {
			probs = append(probs, Problem{Pos: path, RPC: rpc, Message: fmt.Sprintf(format, args...)})
		}
		p := r.Policy
		if len(p.Roles) > 0 && p.Auth != policy.AuthRequired {
			add("resolves to auth %s with roles %s", p.Auth, strings.Join(p.Roles, ","))
		}
		for _, role := range p.Roles {
			if !declared[role] {
				add("role %q is not declared: no proto file has option (gateway.v1.roles) = %q", role, role)
			}
		}
		for _, d := range p.Delegates {
			if !known[d] {
				add("delegates: %q is not a service of the compiled protos", d)
			}
		}
	}
	return probs
}
