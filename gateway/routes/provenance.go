package routes

import (
	"reflect"
	"strings"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/policy"
	gatewayv1 "github.com/acme/shopgate/gen/gateway/v1"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Layer names where a resolved policy value came from.
type Layer string

// The layers, weakest first (see the package doc).
const (
	// LayerDefault: the built-in safe default or the YAML `defaults` section.
	LayerDefault Layer = "default"
	// LayerProtoService: the proto gateway.v1.service_policy of the RPC's service.
	LayerProtoService Layer = "proto-service"
	// LayerProtoMethod: the proto gateway.v1.policy of the RPC.
	LayerProtoMethod Layer = "proto-method"
	// LayerYAMLService: the YAML `routes` override of the service.
	LayerYAMLService Layer = "yaml-service"
	// LayerYAMLRPC: the YAML `routes` override of the RPC.
	LayerYAMLRPC Layer = "yaml-rpc"
)

// Provenance maps a policy field, named as the proto option and the YAML spell it ("auth",
// "rate_limit", "timeout"), to the layer its resolved value came from. It is generic: a field
// added to gateway.v1.Policy or config.RouteOverride is recorded without a change here.
type Provenance map[string]Layer

// Provenance returns which layer set each policy field of r, a route of t (nil for another).
// The default route's fields are all LayerDefault.
func (t *Table) Provenance(r *policy.Route) Provenance {
	if r == t.def {
		return defaultProvenance()
	}
	return t.prov[r]
}

// defaultProvenance names every field a layer can set, each from LayerDefault.
func defaultProvenance() Provenance {
	p := Provenance{}
	fields := (&gatewayv1.Policy{}).ProtoReflect().Descriptor().Fields()
	for i := range fields.Len() {
		p[string(fields.Get(i).Name())] = LayerDefault
	}
	for _, name := range overrideFields(config.RouteOverride{}, true) {
		p[name] = LayerDefault
	}
	return p
}

// setProto records layer for every field pp sets (an unset field keeps the lower layer, as
// applyProto does: proto3 presence, empty lists unset).
func (p Provenance) setProto(pp *gatewayv1.Policy, layer Layer) {
	if pp == nil {
		return
	}
	pp.ProtoReflect().Range(func(fd protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		p[string(fd.Name())] = layer
		return true
	})
}

// setOverride records layer for every field o sets (non-nil, as applyOverride reads it).
func (p Provenance) setOverride(o config.RouteOverride, layer Layer) {
	for _, name := range overrideFields(o, false) {
		p[name] = layer
	}
}

// overrideFields returns the YAML names of o's fields that are set (all of them with every).
func overrideFields(o config.RouteOverride, every bool) []string {
	v := reflect.ValueOf(o)
	var out []string
	for i := range v.NumField() {
		name, _, _ := strings.Cut(v.Type().Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" {
			continue
		}
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
			if !every && f.IsNil() {
				continue
			}
		default:
			if !every && f.IsZero() {
				continue
			}
		}
		out = append(out, name)
	}
	return out
}
