package apicheck

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ChangeKind says which trailer acknowledges a change.
type ChangeKind int

const (
	// Breaking: a client written against the base may fail against the head (a route removed
	// or moved, a field removed, retyped or renamed in JSON, auth or roles tightened).
	// Acknowledged by a commit trailer "API-Breaking: <key>".
	Breaking ChangeKind = iota
	// AuthLoosened: callers the base refused are let in (auth required to optional or none,
	// optional to none, roles dropped or widened). Acknowledged by "API-Auth-Loosened: <rpc>".
	AuthLoosened
)

// Trailer returns the commit trailer key that acknowledges a change of kind k.
func (k ChangeKind) Trailer() string {
	if k == AuthLoosened {
		return TrailerAuthLoosened
	}
	return TrailerBreaking
}

// The commit message trailers that acknowledge changes (git interpret-trailers syntax: a
// "Key: value" line in the message's last paragraph).
const (
	TrailerBreaking     = "API-Breaking"
	TrailerAuthLoosened = "API-Auth-Loosened"
)

// Change is one difference between two versions of the HTTP API that a client would feel.
type Change struct {
	Kind ChangeKind
	// Pos is where it is: in the head, or in the base for what the head no longer has.
	Pos string
	// Message says what changed.
	Message string
	// Keys are the values a trailer may name to acknowledge the change: the RPC
	// ("shop.order.v1.OrderService/GetOrder"), a route ("GET /v1/orders/{id}") or a field
	// ("shop.order.v1.Order.status"). The first is the one reports suggest.
	Keys []string
}

// String renders the change as one line, with the trailer that would acknowledge it.
func (c Change) String() string {
	return fmt.Sprintf("%s: %s [acknowledge with the trailer %s: %s]", c.Pos, c.Message, c.Kind.Trailer(), c.Keys[0])
}

// Acknowledged reports whether acks (trailer key -> values) acknowledge c.
func (c Change) Acknowledged(acks map[string][]string) bool {
	for _, v := range acks[c.Kind.Trailer()] {
		if slices.Contains(c.Keys, v) {
			return true
		}
	}
	return false
}

// Diff compares the HTTP API of base and head: every RPC of base with a google.api.http route,
// its bindings (method and what the template matches; variable names aside, as a client
// cannot see them), the body and response_body field, whether it streams, the messages a client sends and receives
// (fields by number: removed, type or cardinality changed, JSON name or proto name changed;
// enum values by number: removed or renamed, as JSON spells enums by name) and the auth mode
// and roles of the proto policy (service policy, then the method's). Additions are not changes.
// The operator's YAML is not compared: it is deployment, not API.
func Diff(base, head *Schema) []Change {
	var out []Change
	headMethods := map[string]protoreflect.MethodDescriptor{}
	for _, sd := range head.Services() {
		ms := sd.Methods()
		for i := range ms.Len() {
			headMethods[string(ms.Get(i).FullName())] = ms.Get(i)
		}
	}
	fieldSeen := map[string]int{}
	for _, sd := range base.Services() {
		ms := sd.Methods()
		for i := range ms.Len() {
			bm := ms.Get(i)
			brule := httpRule(bm)
			if brule == nil {
				continue
			}
			rpc := rpcName(bm)
			bb := ruleBindings(brule)
			routeKeys := []string{rpc}
			for _, b := range bb {
				routeKeys = append(routeKeys, b.method+" "+b.path)
			}
			hm := headMethods[string(bm.FullName())]
			var hrule *annotations.HttpRule
			if hm != nil {
				hrule = httpRule(hm)
			}
			if hrule == nil {
				what := "is gone"
				if hm != nil {
					what = "has no google.api.http route any more"
				}
				out = append(out, Change{Kind: Breaking, Pos: base.Pos(bm), Keys: routeKeys,
					Message: fmt.Sprintf("route removed: rpc %s %s (%s)", rpc, what, describeBindings(bb))})
				continue
			}
			hb := ruleBindings(hrule)
			pos := head.Pos(hm)
			for _, b := range bb {
				match := findBinding(hb, b)
				if match == nil {
					out = append(out, Change{Kind: Breaking, Pos: pos, Keys: []string{rpc, b.method + " " + b.path},
						Message: fmt.Sprintf("route moved or removed: rpc %s no longer serves %s %s (now: %s)", rpc, b.method, b.path, describeBindings(hb))})
				}
			}
			if brule.GetBody() != hrule.GetBody() || brule.GetResponseBody() != hrule.GetResponseBody() {
				out = append(out, Change{Kind: Breaking, Pos: pos, Keys: routeKeys,
					Message: fmt.Sprintf("rpc %s: body %q -> %q, response_body %q -> %q: the JSON a client sends or gets moves", rpc,
						brule.GetBody(), hrule.GetBody(), brule.GetResponseBody(), hrule.GetResponseBody())})
			}
			if bm.IsStreamingServer() != hm.IsStreamingServer() {
				out = append(out, Change{Kind: Breaking, Pos: pos, Keys: routeKeys,
					Message: fmt.Sprintf("rpc %s: server streaming %v -> %v: the answer changes from one JSON object to a stream, or back", rpc, bm.IsStreamingServer(), hm.IsStreamingServer())})
			}
			out = append(out, diffAuth(rpc, pos, bm, hm)...)
			w := walker{head: head, rpc: rpc, seen: map[[2]string]bool{}, fields: fieldSeen, out: &out}
			w.message(bm.Input(), hm.Input())
			w.message(bm.Output(), hm.Output())
		}
	}
	for _, i := range fieldSeen {
		out[i].Message += " (sent or received by rpc " + strings.Join(out[i].Keys[1:], ", rpc ") + ")"
	}
	sort.SliceStable(out, func(i, j int) bool { return lessPos(out[i].Pos, out[j].Pos) })
	return out
}

func rpcName(md protoreflect.MethodDescriptor) string {
	return string(md.Parent().FullName()) + "/" + string(md.Name())
}

func findBinding(in []binding, b binding) *binding {
	bt, err := parseTemplate(b.path)
	for i := range in {
		if in[i].method != b.method {
			continue
		}
		it, err2 := parseTemplate(in[i].path)
		if err != nil || err2 != nil {
			if in[i].path == b.path {
				return &in[i]
			}
			continue
		}
		if it.shape() == bt.shape() {
			return &in[i]
		}
	}
	return nil
}

func describeBindings(bs []binding) string {
	var parts []string
	for _, b := range bs {
		parts = append(parts, b.method+" "+b.path)
	}
	return strings.Join(parts, ", ")
}

// walker compares the messages of one RPC, base against head, by field number.
type walker struct {
	head   *Schema
	rpc    string
	seen   map[[2]string]bool
	fields map[string]int // index in out of a field change already reported (for another RPC)
	out    *[]Change
}

func (w *walker) report(key, pos, msg string) {
	if i, ok := w.fields[key+"\x00"+msg]; ok {
		if c := &(*w.out)[i]; !slices.Contains(c.Keys, w.rpc) {
			c.Keys = append(c.Keys, w.rpc)
		}
		return
	}
	*w.out = append(*w.out, Change{Kind: Breaking, Pos: pos, Keys: []string{key, w.rpc}, Message: msg})
	w.fields[key+"\x00"+msg] = len(*w.out) - 1
}

func (w *walker) message(b, h protoreflect.MessageDescriptor) {
	k := [2]string{string(b.FullName()), string(h.FullName())}
	if w.seen[k] {
		return
	}
	w.seen[k] = true
	bf, hf := b.Fields(), h.Fields()
	for i := range bf.Len() {
		f := bf.Get(i)
		name := string(f.FullName())
		g := hf.ByNumber(f.Number())
		if g == nil {
			w.report(name, w.head.Pos(h), fmt.Sprintf("field removed: %s (JSON %s, number %d)", f.FullName(), f.JSONName(), f.Number()))
			continue
		}
		pos := w.head.Pos(g)
		if f.JSONName() != g.JSONName() || f.Name() != g.Name() {
			w.report(name, pos, fmt.Sprintf("field renamed: %s is %q in JSON (proto %s), was %q (proto %s)",
				g.FullName(), g.JSONName(), g.Name(), f.JSONName(), f.Name()))
		}
		if bt, ht := typeName(f), typeName(g); bt != ht {
			w.report(name, pos, fmt.Sprintf("field type changed: %s was %s, is %s", g.FullName(), bt, ht))
			continue
		}
		switch {
		case f.IsMap():
			if f.MapValue().Message() != nil {
				w.message(f.MapValue().Message(), g.MapValue().Message())
			} else if f.MapValue().Enum() != nil {
				w.enum(f.MapValue().Enum(), g.MapValue().Enum())
			}
		case f.Message() != nil:
			w.message(f.Message(), g.Message())
		case f.Enum() != nil:
			w.enum(f.Enum(), g.Enum())
		}
	}
}

func (w *walker) enum(b, h protoreflect.EnumDescriptor) {
	k := [2]string{string(b.FullName()), string(h.FullName())}
	if w.seen[k] {
		return
	}
	w.seen[k] = true
	bv, hv := b.Values(), h.Values()
	for i := range bv.Len() {
		v := bv.Get(i)
		g := hv.ByNumber(v.Number())
		switch {
		case g == nil:
			w.report(string(v.FullName()), w.head.Pos(h), fmt.Sprintf("enum value removed: %s (%d) of %s", v.Name(), v.Number(), b.FullName()))
		case g.Name() != v.Name():
			w.report(string(v.FullName()), w.head.Pos(g), fmt.Sprintf("enum value renamed: %s %d is %s in JSON, was %s", h.FullName(), v.Number(), g.Name(), v.Name()))
		}
	}
}

// typeName is a field's type as JSON sees it: cardinality, kind, and message or enum name
// (a renamed message is a type change to a client only through its fields, so messages and
// enums compare by structure, not name).
func typeName(f protoreflect.FieldDescriptor) string {
	var card string
	switch {
	case f.IsMap():
		return "map<" + typeName(f.MapKey()) + ", " + typeName(f.MapValue()) + ">"
	case f.IsList():
		card = "repeated "
	}
	switch f.Kind() {
	case protoreflect.MessageKind, protoreflect.GroupKind:
		if wkt := f.Message().FullName(); strings.HasPrefix(string(wkt), "google.protobuf.") {
			return card + string(wkt) // well-known types have their own JSON forms
		}
		return card + "message"
	case protoreflect.EnumKind:
		return card + "enum"
	}
	return card + f.Kind().String()
}
