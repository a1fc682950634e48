package apicheck

import (
	"fmt"
	"strings"

	"github.com/acme/shopgate/gateway/routes"
)

// template is a google.api.http path template flattened to what it matches: the segments
// (variables replaced by their sub-patterns, "{id}" by "*") and the custom verb.
//
// The grammar is grpc-gateway's (internal/httprule, after google/api/http.proto):
//
//	Template = "/" Segments [ Verb ] ;
//	Segments = Segment { "/" Segment } ;
//	Segment  = "*" | "**" | LITERAL | Variable ;
//	Variable = "{" FieldPath [ "=" Segments ] "}" ;
//	Verb     = ":" LITERAL ;
type template struct {
	segs []segment
	verb string
}

type segKind int

const (
	segLiteral segKind = iota // matches itself
	segStar                   // "*": one non-empty segment
	segDeep                   // "**": zero or more segments
)

type segment struct {
	kind segKind
	lit  string
}

// parseTemplate parses a path template; it refuses what grpc-gateway's generator refuses at
// generation time that can be told from the template alone.
func parseTemplate(tpl string) (template, error) {
	var t template
	if !strings.HasPrefix(tpl, "/") {
		return t, fmt.Errorf("path template %q does not start with /", tpl)
	}
	body := tpl[1:]
	// The verb follows the last ':' outside a variable and after the last '/'.
	if i := strings.LastIndexByte(body, ':'); i >= 0 && i > strings.LastIndexByte(body, '}') && i > strings.LastIndexByte(body, '/') {
		t.verb = body[i+1:]
		body = body[:i]
		if t.verb == "" {
			return t, fmt.Errorf("path template %q: empty verb", tpl)
		}
	}
	for _, s := range routes.SplitTemplate(body) {
		switch {
		case s == "":
			return t, fmt.Errorf("path template %q: empty segment", tpl)
		case strings.HasPrefix(s, "{"):
			if !strings.HasSuffix(s, "}") {
				return t, fmt.Errorf("path template %q: unterminated variable %q", tpl, s)
			}
			v := s[1 : len(s)-1]
			inner := "*"
			if k := strings.IndexByte(v, '='); k >= 0 {
				v, inner = v[:k], v[k+1:]
			}
			if v == "" || strings.ContainsAny(v, "{}/*") {
				return t, fmt.Errorf("path template %q: bad variable %q", tpl, s)
			}
			for _, in := range strings.Split(inner, "/") {
				if in == "" || strings.ContainsAny(in, "{}") {
					return t, fmt.Errorf("path template %q: bad variable pattern %q", tpl, s)
				}
				t.segs = append(t.segs, plainSegment(in))
			}
		default:
			if strings.ContainsAny(s, "{}") {
				return t, fmt.Errorf("path template %q: bad segment %q", tpl, s)
			}
			t.segs = append(t.segs, plainSegment(s))
		}
	}
	for i, s := range t.segs {
		if s.kind == segDeep && i != len(t.segs)-1 {
			return t, fmt.Errorf("path template %q: ** must be the last segment", tpl)
		}
	}
	return t, nil
}

func plainSegment(s string) segment {
	switch s {
	case "*":
		return segment{kind: segStar}
	case "**":
		return segment{kind: segDeep}
	}
	return segment{kind: segLiteral, lit: s}
}

// shape is the template as a client sees it: what it matches, variable names left out
// ("/v1/items/*:cancel").
func (t template) shape() string {
	var b strings.Builder
	for _, s := range t.segs {
		b.WriteByte('/')
		switch s.kind {
		case segStar:
			b.WriteByte('*')
		case segDeep:
			b.WriteString("**")
		default:
			b.WriteString(s.lit)
		}
	}
	if t.verb != "" {
		b.WriteString(":" + t.verb)
	}
	return b.String()
}

// overlaps reports whether some request path matches both templates with the same verb (or
// both without one). A verbless template can also take a custom method's requests: see
// absorbsVerbOf.
func (t template) overlaps(u template) bool {
	if t.verb != u.verb {
		return false
	}
	memo := map[[2]int]bool{}
	var match func(i, j int) bool
	match = func(i, j int) bool {
		k := [2]int{i, j}
		if v, ok := memo[k]; ok {
			return v
		}
		var r bool
		switch {
		case i < len(t.segs) && t.segs[i].kind == segDeep:
			// ** takes zero segments, or one more of u's.
			r = match(i+1, j) || (j < len(u.segs) && match(i, j+1))
		case j < len(u.segs) && u.segs[j].kind == segDeep:
			r = match(i, j+1) || (i < len(t.segs) && match(i+1, j))
		case i == len(t.segs) || j == len(u.segs):
			r = i == len(t.segs) && j == len(u.segs)
		default:
			a, b := t.segs[i], u.segs[j]
			r = (a.kind != segLiteral || b.kind != segLiteral || a.lit == b.lit) && match(i+1, j+1)
		}
		memo[k] = r
		return r
	}
	return match(0, 0)
}

// absorbsVerbOf reports whether t, a template without a verb whose last segment is a wildcard,
// also matches the requests of u, a template with a verb: its last variable takes "id:verb".
// grpc-gateway tries the bindings of a method newest first, so when t is registered after u it
// takes u's requests (and the gateway's route stage answers them 405, see
// routes.Table.CustomMethodAllowed).
func (t template) absorbsVerbOf(u template) bool {
	if t.verb != "" || u.verb == "" || len(t.segs) == 0 || t.segs[len(t.segs)-1].kind == segLiteral {
		return false
	}
	u.verb = ""
	return t.overlaps(u)
}
