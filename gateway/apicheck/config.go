package apicheck

import (
	"fmt"
	"os"
	"strings"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/routes"
	"go.yaml.in/yaml/v3"
)

// CheckConfig checks an operator's configuration (already parsed, so its own values are valid)
// against the protos of s: what routes.Build refuses at start-up (an override naming no RPC, an
// invalid proto policy), and, on the resolved routes, auth none or optional with roles, a role
// no proto file declares and delegates no proto declares. Problems are positioned at the line
// of the `routes` key concerned in path (the RPC's override, else its service's), when path
// can be read again, else at path.
func CheckConfig(s *Schema, cfg *config.Config, path string) []Problem {
	var probs []Problem
	lines := routeLines(path)
	at := func(keys ...string) string {
		for _, k := range keys {
			if n, ok := lines[k]; ok {
				return fmt.Sprintf("%s:%d", path, n)
			}
		}
		return path
	}
	table, err := routes.Build(cfg, s.Services())
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			pos := path
			for k := range lines {
				if strings.Contains(line, `"`+k+`"`) {
					pos = at(k)
				}
			}
			probs = append(probs, Problem{Pos: pos, Message: line})
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
			probs = append(probs, Problem{Pos: at(rpc, r.Service), RPC: rpc, Message: fmt.Sprintf(format, args...)})
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

// routeLines maps each key under the top-level `routes` of the YAML file at path to its line;
// empty when the file cannot be read or parsed (config.Load reported that already).
func routeLines(path string) map[string]int {
	lines := map[string]int{}
	data, err := os.ReadFile(path)
	if err != nil {
		return lines
	}
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return lines
	}
	top := doc.Content[0].Content
	for i := 0; i+1 < len(top); i += 2 {
		if top[i].Value != "routes" || top[i+1].Kind != yaml.MappingNode {
			continue
		}
		rs := top[i+1].Content
		for j := 0; j+1 < len(rs); j += 2 {
			lines[rs[j].Value] = rs[j].Line
		}
	}
	return lines
}
