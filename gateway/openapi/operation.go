package openapi

import (
	"fmt"
	"strings"
	"time"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/policy"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// operation returns the OpenAPI path and operation of route r, the n-th binding of its RPC.
func (b *builder) operation(sd protoreflect.ServiceDescriptor, r *policy.Route, n int) (string, *operation, error) {
	name := r.RPC[strings.LastIndexByte(r.RPC, '/')+1:]
	md := sd.Methods().ByName(protoreflect.Name(name))
	if md == nil {
		return "", nil, fmt.Errorf("openapi: route %s %s: %s declares no method %s", r.HTTPMethod, r.Path, sd.FullName(), name)
	}
	h := rule(md, r)
	if h == nil {
		return "", nil, fmt.Errorf("openapi: route %s %s: %s declares no such binding", r.HTTPMethod, r.Path, r.RPC)
	}
	path, vars, err := parseTemplate(r.Path)
	if err != nil {
		return "", nil, fmt.Errorf("openapi: route %s %s: %w", r.HTTPMethod, r.Path, err)
	}
	comment := b.opts.Comments.of(md)
	op := &operation{
		Tags:        []string{b.tags[sd.FullName()]},
		Summary:     summary(comment),
		OperationID: string(sd.Name()) + "_" + name,
		Responses:   map[string]*response{},
		XAuth:       r.Policy.Auth.String(),
		XRoles:      r.Policy.Roles,
		XIdempotent: r.Policy.Idempotent,
		XRPC:        r.RPC,
	}
	if op.Summary == "" {
		op.Summary = name
	}
	if n > 0 {
		op.OperationID += fmt.Sprintf("_%d", n)
	}
	if rl := r.Policy.RateLimit; rl.Enabled() {
		op.XRateLimit = &rateLimit{Requests: rl.Requests, Per: duration(rl.Per), Burst: rl.Burst}
	}
	if r.Policy.Timeout > 0 {
		op.XTimeout = duration(r.Policy.Timeout)
	}
	op.Description = strings.TrimSpace(comment + "\n\n" + b.policyText(r))

	in := md.Input()
	skip := map[string]bool{} // proto paths of the fields the path or the body fills
	for _, v := range vars {
		f, err := fieldAt(in, v.field)
		if err != nil {
			return "", nil, fmt.Errorf("openapi: route %s %s: %w", r.HTTPMethod, r.Path, err)
		}
		sc := b.sch.singular(f)
		desc := b.opts.Comments.of(f)
		if v.pattern != "" {
			desc = strings.TrimSpace(desc + "\n\nMatches `" + v.pattern + "` (slashes included).")
		}
		op.Parameters = append(op.Parameters, &parameter{Name: v.field, In: "path", Required: true, Description: desc, Schema: sc})
		skip[v.field] = true
	}
	switch body := h.GetBody(); body {
	case "":
		op.Parameters = append(op.Parameters, b.query(in, "", "", skip, map[protoreflect.FullName]bool{in.FullName(): true})...)
	case "*":
		top := map[string]bool{} // a nested path field ("item.sku") leaves its message in the body
		for v := range skip {
			if !strings.Contains(v, ".") {
				top[v] = true
			}
		}
		op.RequestBody = &requestBody{Content: map[string]*mediaType{"application/json": {Schema: b.sch.messageExcept(in, top)}}}
	default:
		f, err := fieldAt(in, body)
		if err != nil {
			return "", nil, fmt.Errorf("openapi: route %s %s: body: %w", r.HTTPMethod, r.Path, err)
		}
		op.RequestBody = &requestBody{Description: b.opts.Comments.of(f),
			Content: map[string]*mediaType{"application/json": {Schema: b.sch.field(f)}}}
		skip[body] = true
		op.Parameters = append(op.Parameters, b.query(in, "", "", skip, map[protoreflect.FullName]bool{in.FullName(): true})...)
	}

	out := b.sch.message(md.Output())
	if rb := h.GetResponseBody(); rb != "" {
		f, err := fieldAt(md.Output(), rb)
		if err != nil {
			return "", nil, fmt.Errorf("openapi: route %s %s: response_body: %w", r.HTTPMethod, r.Path, err)
		}
		out = b.sch.field(f)
	}
	if md.IsStreamingServer() {
		op.Responses["200"] = &response{
			Description: "A stream of messages, open until the RPC ends. `application/x-ndjson` (the default): " +
				"one JSON object per line, `{\"result\": <message>}`, and a final `{\"error\": <google.rpc.Status>}` " +
				"when the stream fails after it began. `text/event-stream` (with `Accept: text/event-stream`): " +
				"`data: <message JSON>` frames, and an `event: error` frame with a google.rpc.Status.",
			Content: map[string]*mediaType{
				"application/x-ndjson": {Schema: &schema{Type: "object", Properties: map[string]*schema{"result": out, "error": ref(statusName)}}},
				"text/event-stream":    {Schema: &schema{Type: "string", Description: "Server-sent events: `data: <message JSON>` frames."}},
			},
		}
	} else {
		op.Responses["200"] = &response{Description: "OK", Content: map[string]*mediaType{"application/json": {Schema: out}}}
	}
	b.errorResponses(op, r)
	if sec := b.security(r.Policy.Auth); sec != nil {
		op.Security = &sec
	}
	return path, op, nil
}

// security is the security requirement of an auth mode: nil when no credential is taken; any
// scheme when one is required; any scheme or none ({}) when it is optional.
func (b *builder) security(m policy.AuthMode) []map[string][]string {
	if m == policy.AuthNone {
		return nil
	}
	sec := []map[string][]string{{SchemeBearer: {}}}
	if b.opts.APIKeys {
		sec = append(sec, map[string][]string{SchemeAPIKey: {}})
	}
	if m == policy.AuthOptional {
		sec = append(sec, map[string][]string{})
	}
	return sec
}

// policyText says a route's policy in words, for its description.
func (b *builder) policyText(r *policy.Route) string {
	p := r.Policy
	var parts []string
	cred := "a bearer token"
	if b.opts.APIKeys {
		cred += " or an API key (" + auth.HeaderAPIKey + ")"
	}
	switch p.Auth {
	case policy.AuthNone:
		parts = append(parts, "**Auth**: none (public).")
	case policy.AuthOptional:
		parts = append(parts, "**Auth**: optional: "+cred+" is verified when sent.")
	default:
		parts = append(parts, "**Auth**: required: "+cred+".")
	}
	if len(p.Roles) > 0 {
		parts = append(parts, "**Roles**: any of "+strings.Join(p.Roles, ", ")+".")
	}
	if p.RateLimit.Enabled() {
		parts = append(parts, fmt.Sprintf("**Rate limit**: %d per %s per caller, bursts of %d.", p.RateLimit.Requests, duration(p.RateLimit.Per), p.RateLimit.Burst))
	}
	if p.Timeout > 0 {
		parts = append(parts, "**Timeout**: "+duration(p.Timeout)+".")
	}
	return strings.Join(parts, " ")
}

// errorResponses adds the refusals route r can give, each a reference to errorResponses.
func (b *builder) errorResponses(op *operation, r *policy.Route) {
	add := func(code string) { op.Responses[code] = &response{Ref: "#/components/responses/" + errorNames[code]} }
	add("400")
	if r.Policy.Auth != policy.AuthNone {
		add("401")
	}
	if len(r.Policy.Roles) > 0 || len(r.Policy.AllowCIDRs) > 0 || len(r.Policy.DenyCIDRs) > 0 {
		add("403")
	}
	for _, code := range []string{"404", "429", "503", "504"} {
		add(code)
	}
}

// errorNames names the component of each error response.
var errorNames = map[string]string{
	"400": "InvalidArgument", "401": "Unauthenticated", "403": "PermissionDenied", "404": "NotFound",
	"429": "ResourceExhausted", "503": "Unavailable", "504": "DeadlineExceeded",
}

// errorResponses are the components of the refusals, each a google.rpc.Status.
func errorResponses() map[string]*response {
	status := func(desc string, headers map[string]*header) *response {
		return &response{Description: desc, Headers: headers,
			Content: map[string]*mediaType{"application/json": {Schema: ref(statusName)}}}
	}
	return map[string]*response{
		"InvalidArgument": status("INVALID_ARGUMENT: malformed JSON, an unknown field, an invalid value; or FAILED_PRECONDITION.", nil),
		"Unauthenticated": status("UNAUTHENTICATED: a missing (when required), malformed, expired or wrongly signed credential.",
			map[string]*header{"WWW-Authenticate": {Schema: &schema{Type: "string"}}}),
		"PermissionDenied": status("PERMISSION_DENIED: the caller lacks a role, or its address is not allowed.", nil),
		"NotFound":         status("NOT_FOUND: no such resource, or one the caller may not see.", nil),
		"ResourceExhausted": status("RESOURCE_EXHAUSTED: rate limit exceeded, too many open streams, or the address blocked for abuse.",
			map[string]*header{
				"Retry-After":      {Description: "Seconds to wait.", Schema: &schema{Type: "integer"}},
				"RateLimit-Policy": {Description: "The limit (rate limits only).", Schema: &schema{Type: "string"}},
				"RateLimit":        {Description: "What is left of it (rate limits only).", Schema: &schema{Type: "string"}},
			}),
		"Unavailable":      status("UNAVAILABLE: the upstream is down or its circuit open.", nil),
		"DeadlineExceeded": status("DEADLINE_EXCEEDED: the upstream did not answer within the route's timeout.", nil),
	}
}

// query returns the query parameters of md's fields not in skip (proto paths), grpc-gateway's
// way: scalars, enums and repeated scalars by their dotted JSON names; nested messages
// recursively (once per type on a path); well-known types that have a string form as strings.
// Maps and repeated messages cannot be sent in a query and are left out.
func (b *builder) query(md protoreflect.MessageDescriptor, jsonPrefix, protoPrefix string, skip map[string]bool, seen map[protoreflect.FullName]bool) []*parameter {
	var out []*parameter
	fields := md.Fields()
	for i := range fields.Len() {
		f := fields.Get(i)
		pp, jp := protoPrefix+string(f.Name()), jsonPrefix+f.JSONName()
		if skip[pp] || f.IsMap() {
			continue
		}
		if f.Message() != nil {
			if f.IsList() {
				continue
			}
			if wk := wellKnown(f.Message()); wk != nil {
				if wk.Type == "string" || wk.Type == "boolean" || wk.Type == "integer" || wk.Type == "number" {
					out = append(out, &parameter{Name: jp, In: "query", Description: b.opts.Comments.of(f), Schema: wk})
				}
				continue
			}
			if seen[f.Message().FullName()] {
				continue
			}
			seen[f.Message().FullName()] = true
			out = append(out, b.query(f.Message(), jp+".", pp+".", skip, seen)...)
			delete(seen, f.Message().FullName())
			continue
		}
		sc := b.sch.singular(f)
		if f.IsList() {
			sc = &schema{Type: "array", Items: sc}
		}
		out = append(out, &parameter{Name: jp, In: "query", Description: b.opts.Comments.of(f), Schema: sc})
	}
	return out
}

// fieldAt returns the field at a dotted proto path ("item.sku") of md.
func fieldAt(md protoreflect.MessageDescriptor, path string) (protoreflect.FieldDescriptor, error) {
	var f protoreflect.FieldDescriptor
	for i, name := range strings.Split(path, ".") {
		if i > 0 {
			if f.Message() == nil || f.IsList() || f.IsMap() {
				return nil, fmt.Errorf("field %q: %s is not a message", path, f.Name())
			}
			md = f.Message()
		}
		if f = md.Fields().ByName(protoreflect.Name(name)); f == nil {
			return nil, fmt.Errorf("field %q: %s has no field %s", path, md.FullName(), name)
		}
	}
	return f, nil
}

// variable is a path template's variable: its field path and, for "{name=shelves/*}", its
// pattern.
type variable struct{ field, pattern string }

// parseTemplate turns a google.api.http path template into an OpenAPI path ("{name=shelves/*}"
// becomes "{name}") and its variables.
func parseTemplate(tpl string) (string, []variable, error) {
	var b strings.Builder
	var vars []variable
	for {
		i := strings.IndexByte(tpl, '{')
		if i < 0 {
			b.WriteString(tpl)
			return b.String(), vars, nil
		}
		j := strings.IndexByte(tpl[i:], '}')
		if j < 0 {
			return "", nil, fmt.Errorf("unclosed variable in %q", tpl)
		}
		j += i
		field, pattern, _ := strings.Cut(tpl[i+1:j], "=")
		if field == "" {
			return "", nil, fmt.Errorf("empty variable in %q", tpl)
		}
		if pattern == "*" {
			pattern = ""
		}
		vars = append(vars, variable{field: field, pattern: pattern})
		b.WriteString(tpl[:i] + "{" + field + "}")
		tpl = tpl[j+1:]
	}
}

// duration spells d as the YAML does: whole seconds as "60s", else Go's form ("1.5s", "250ms").
func duration(d time.Duration) string {
	if d%time.Second == 0 {
		return fmt.Sprintf("%ds", d/time.Second)
	}
	return d.String()
}
