// Package routes builds the gateway's route table at start-up (and at each reload): one
// policy.Route per google.api.http binding of the served services, read from the compiled
// descriptors, with its policy resolved once.
//
// Precedence, from weakest to strongest: the built-in safe default (auth required, the default
// rate limit, the default timeout, idempotent only for GET) < the YAML `defaults` < the proto
// gateway.v1.service_policy < the proto gateway.v1.policy of the method < the YAML override of
// the service < the YAML override of the RPC. Table.Provenance says, per policy field, which of
// these layers set it (Layer); Entries and Handler list the table with it, for `gateway routes`
// and GET /admin/routes.
//
// At request time the table is looked up by Key(method, pattern), where pattern is the string
// grpc-gateway's runtime.HTTPPattern(ctx).String() renders ("/v1/orders/{id=*}:cancel" for the
// proto template "/v1/orders/{id}:cancel"): one map lookup, no allocation.
package routes

import (
	"fmt"
	"sort"
	"strings"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/policy"
)

// Table is an immutable route table.
type Table struct {
	routes []*policy.Route
	byKey  map[string]*policy.Route
	def    *policy.Route
	match  []matcher
	prov   map[*policy.Route]Provenance
}

// Key is the lookup key of a binding: the HTTP method, a space and the normalized pattern.
func Key(method, pattern string) string { return method + " " + pattern }

// Lookup returns the route of a key made by Key, or nil when the table has none.
func (t *Table) Lookup(key string) *policy.Route { return t.byKey[key] }

// Routes returns every route, ordered by service, RPC and binding.
func (t *Table) Routes() []*policy.Route { return t.routes }

// Default returns the route given to a request whose binding is missing from the table: the
// safe default policy (auth required, default rate limit and timeout, not idempotent), never
// an open one. Its RPC is empty.
func (t *Table) Default() *policy.Route { return t.def }

// Allowed returns the HTTP methods that have a binding matching path, sorted, for the Allow
// header of a 405. It walks every binding: use it on the error path only.
func (t *Table) Allowed(path string) []string {
	var methods []string
	for _, m := range t.match {
		if m.matches(path) && !contains(methods, m.method) {
			methods = append(methods, m.method)
		}
	}
	sort.Strings(methods)
	return methods
}

// CustomMethodAllowed returns the HTTP methods of the bindings with a verb ("/v1/orders/{id}:cancel")
// that match path, sorted; nil when path names no custom method. A path such as
// "/v1/orders/o-1:cancel" also matches a verbless binding ("/v1/orders/{id}", with id
// "o-1:cancel"): grpc-gateway then routes GET there, and the route stage answers 405 instead.
func (t *Table) CustomMethodAllowed(path string) []string {
	var methods []string
	for _, m := range t.match {
		if m.verb != "" && m.matches(path) && !contains(methods, m.method) {
			methods = append(methods, m.method)
		}
	}
	sort.Strings(methods)
	return methods
}

// NormalizeTemplate rewrites a google.api.http path template the way grpc-gateway's
// runtime.Pattern.String renders it: a variable without a pattern, "{id}", becomes "{id=*}".
func NormalizeTemplate(tpl string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			b.WriteString(tpl)
			return b.String()
		}
		j := strings.IndexByte(tpl[i:], '}')
		if j < 0 {
			b.WriteString(tpl)
			return b.String()
		}
		j += i
		b.WriteString(tpl[:i])
		v := tpl[i+1 : j]
		if !strings.Contains(v, "=") {
			v += "=*"
		}
		b.WriteByte('{')
		b.WriteString(v)
		b.WriteByte('}')
		tpl = tpl[j+1:]
	}
}

// defaultRoute is the safe default route of cfg: the YAML defaults (validated by config),
// resolved.
func defaultRoute(cfg *config.Config) *policy.Route {
	return &policy.Route{Policy: policy.Policy{
		Auth:      policy.AuthRequired,
		RateLimit: cfg.Defaults.RateLimit.Resolved(),
		Timeout:   cfg.Defaults.Timeout,
	}}
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// matcher matches a request path against one binding's template.
type matcher struct {
	method string
	segs   []string // literal, "*" or "**"
	verb   string
}

func newMatcher(method, tpl string) matcher {
	m := matcher{method: method}
	// A verb follows the last ':' that is outside a variable.
	if i := strings.LastIndexByte(tpl, ':'); i > strings.LastIndexByte(tpl, '}') && i > strings.LastIndexByte(tpl, '/') {
		m.verb = tpl[i+1:]
		tpl = tpl[:i]
	}
	var segs []string
	for _, s := range SplitTemplate(strings.TrimPrefix(tpl, "/")) {
		if strings.HasPrefix(s, "{") {
			v := strings.Trim(s, "{}")
			inner := "*"
			if k := strings.IndexByte(v, '='); k >= 0 {
				inner = v[k+1:]
			}
			segs = append(segs, strings.Split(inner, "/")...)
			continue
		}
		segs = append(segs, s)
	}
	m.segs = segs
	return m
}

// SplitTemplate splits a path template's segments on '/' outside braces, so that a variable's
// own pattern ("{name=shelves/*}") stays one segment.
func SplitTemplate(s string) []string {
	var out []string
	depth, start := 0, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '{':
			depth++
		case '}':
			depth--
		case '/':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	return append(out, s[start:])
}

func (m matcher) matches(path string) bool {
	path = strings.TrimPrefix(path, "/")
	parts := strings.Split(path, "/")
	last := parts[len(parts)-1]
	if m.verb != "" {
		if !strings.HasSuffix(last, ":"+m.verb) {
			return false
		}
		parts[len(parts)-1] = strings.TrimSuffix(last, ":"+m.verb)
	}
	for i, s := range m.segs {
		if s == "**" {
			return true
		}
		if i >= len(parts) {
			return false
		}
		if s != "*" && s != parts[i] {
			return false
		}
		if s == "*" && parts[i] == "" {
			return false
		}
	}
	return len(parts) == len(m.segs)
}

func describe(r *policy.Route) string { return fmt.Sprintf("%s %s (%s)", r.HTTPMethod, r.Path, r.RPC) }
