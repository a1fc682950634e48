package apicheck

import (
	"net/http"
	"strings"

	gatewayv1 "github.com/acme/shopgate/gen/gateway/v1"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
)

// knownServices are the full names of every service compiled (imports included).
func (s *Schema) knownServices() map[string]bool {
	known := map[string]bool{}
	s.Registry.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		svcs := f.Services()
		for i := range svcs.Len() {
			known[string(svcs.Get(i).FullName())] = true
		}
		return true
	})
	return known
}

// declaredRoles is the union of the gateway.v1.roles file options of every compiled file.
func (s *Schema) declaredRoles() map[string]bool {
	roles := map[string]bool{}
	s.Registry.RangeFiles(func(f protoreflect.FileDescriptor) bool {
		opts, _ := f.Options().(*descriptorpb.FileOptions)
		if opts == nil {
			return true
		}
		declared, _ := proto.GetExtension(opts, gatewayv1.E_Roles).([]string)
		for _, r := range declared {
			roles[r] = true
		}
		return true
	})
	return roles
}

func servicePolicy(sd protoreflect.ServiceDescriptor) *gatewayv1.Policy {
	opts, _ := sd.Options().(*descriptorpb.ServiceOptions)
	if opts == nil || !proto.HasExtension(opts, gatewayv1.E_ServicePolicy) {
		return nil
	}
	p, _ := proto.GetExtension(opts, gatewayv1.E_ServicePolicy).(*gatewayv1.Policy)
	return p
}

func methodPolicy(md protoreflect.MethodDescriptor) *gatewayv1.Policy {
	opts, _ := md.Options().(*descriptorpb.MethodOptions)
	if opts == nil || !proto.HasExtension(opts, gatewayv1.E_Policy) {
		return nil
	}
	p, _ := proto.GetExtension(opts, gatewayv1.E_Policy).(*gatewayv1.Policy)
	return p
}

func httpRule(md protoreflect.MethodDescriptor) *annotations.HttpRule {
	opts, _ := md.Options().(*descriptorpb.MethodOptions)
	if opts == nil || !proto.HasExtension(opts, annotations.E_Http) {
		return nil
	}
	r, _ := proto.GetExtension(opts, annotations.E_Http).(*annotations.HttpRule)
	return r
}

// ruleBindings lists a rule's bindings, additional_bindings included, as routes.Build does.
func ruleBindings(rule *annotations.HttpRule) []binding {
	var out []binding
	add := func(r *annotations.HttpRule) {
		switch p := r.GetPattern().(type) {
		case *annotations.HttpRule_Get:
			out = append(out, binding{method: http.MethodGet, path: p.Get})
		case *annotations.HttpRule_Put:
			out = append(out, binding{method: http.MethodPut, path: p.Put})
		case *annotations.HttpRule_Post:
			out = append(out, binding{method: http.MethodPost, path: p.Post})
		case *annotations.HttpRule_Delete:
			out = append(out, binding{method: http.MethodDelete, path: p.Delete})
		case *annotations.HttpRule_Patch:
			out = append(out, binding{method: http.MethodPatch, path: p.Patch})
		case *annotations.HttpRule_Custom:
			out = append(out, binding{method: strings.ToUpper(p.Custom.GetKind()), path: p.Custom.GetPath()})
		}
	}
	add(rule)
	for _, r := range rule.GetAdditionalBindings() {
		add(r)
	}
	return out
}
