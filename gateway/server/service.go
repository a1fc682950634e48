package server

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/acme/shopgate/gateway/routes"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// registry is Options.Services by full name, checked.
type registry map[string]routes.Service

func newRegistry(svcs []routes.Service) (registry, error) {
	reg := make(registry, len(svcs))
	for i, s := range svcs {
		if s.Desc == nil || s.Register == nil {
			return nil, fmt.Errorf("services[%d]: want a descriptor and a registration", i)
		}
		name := string(s.Desc.FullName())
		if _, dup := reg[name]; dup {
			return nil, fmt.Errorf("services: %s listed twice", name)
		}
		reg[name] = s
	}
	return reg, nil
}

// descriptors returns every service's descriptor, sorted by name: the route table lists them
// all, whether or not the configuration gives them an upstream.
func (reg registry) descriptors() []protoreflect.ServiceDescriptor {
	out := make([]protoreflect.ServiceDescriptor, 0, len(reg))
	for _, s := range reg {
		out = append(out, s.Desc)
	}
	slices.SortFunc(out, func(a, b protoreflect.ServiceDescriptor) int { return cmp.Compare(a.FullName(), b.FullName()) })
	return out
}
