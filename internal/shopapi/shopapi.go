// Package shopapi hands the gateway the shop's gRPC services that have google.api.http routes:
// each one's descriptor (its routes and gateway.v1 policy options) and its generated
// grpc-gateway registration. The list is generated (gen/registry, by
// cmd/protoc-gen-shopgate-registry under `buf generate`), not kept by hand: a new service is
// its proto, nothing here. The gateway library knows no service by name; the binaries
// (cmd/gateway, cmd/shop) and the tests hand this list to server.Options.Services.
package shopapi

import (
	"net/http"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/acme/shopgate/gateway/routes"
	"github.com/acme/shopgate/gen/registry"
)

// Services returns the shop's services, sorted by full name. gen/registry imports nothing of
// the gateway's, so its Service is a struct of its own, converted here field for field.
func Services() []routes.Service {
	gen := registry.Services()
	out := make([]routes.Service, len(gen))
	for i, s := range gen {
		out[i] = routes.Service(s)
	}
	return out
}

// Descriptors returns the descriptors of Services, for routes.Build.
func Descriptors() []protoreflect.ServiceDescriptor {
	svcs := Services()
	out := make([]protoreflect.ServiceDescriptor, len(svcs))
	for i, s := range svcs {
		out[i] = s.Desc
	}
	return out
}

// Names returns the full names of Services (shop.order.v1.OrderService), sorted.
func Names() []string {
	svcs := Services()
	out := make([]string, len(svcs))
	for i, s := range svcs {
		out[i] = string(s.Desc.FullName())
	}
	return out
}

// Binding is one google.api.http binding of a method: the rule itself or one of its
// additional_bindings. Each is one route of the gateway.
type Binding struct {
	// RPC is the full method name: /shop.order.v1.OrderService/CreateOrder.
	RPC string
	// Method is the HTTP method (GET, POST, ...; a custom kind upper-cased).
	Method string
	// Path is the path template as the proto writes it: /v1/orders/{id}:cancel.
	Path string
}

// Bindings returns every google.api.http binding of Services, read from their descriptors, in
// service, method and binding order. The tests take the expected routes from it instead of
// counting them by hand.
func Bindings() []Binding {
	var out []Binding
	for _, sd := range Descriptors() {
		for i := range sd.Methods().Len() {
			md := sd.Methods().Get(i)
			rule, _ := proto.GetExtension(md.Options(), annotations.E_Http).(*annotations.HttpRule)
			if rule == nil {
				continue
			}
			rpc := "/" + string(sd.FullName()) + "/" + string(md.Name())
			for _, r := range append([]*annotations.HttpRule{rule}, rule.GetAdditionalBindings()...) {
				out = append(out, binding(rpc, r))
			}
		}
	}
	return out
}

func binding(rpc string, r *annotations.HttpRule) Binding {
	switch p := r.GetPattern().(type) {
	case *annotations.HttpRule_Get:
		return Binding{rpc, http.MethodGet, p.Get}
	case *annotations.HttpRule_Put:
		return Binding{rpc, http.MethodPut, p.Put}
	case *annotations.HttpRule_Post:
		return Binding{rpc, http.MethodPost, p.Post}
	case *annotations.HttpRule_Delete:
		return Binding{rpc, http.MethodDelete, p.Delete}
	case *annotations.HttpRule_Patch:
		return Binding{rpc, http.MethodPatch, p.Patch}
	case *annotations.HttpRule_Custom:
		return Binding{rpc, strings.ToUpper(p.Custom.GetKind()), p.Custom.GetPath()}
	}
	return Binding{RPC: rpc}
}
