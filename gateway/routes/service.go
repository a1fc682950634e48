package routes

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Service is one gRPC service a gateway can serve: its descriptor, whose google.api.http
// bindings and gateway.v1 options become routes (Build), and its generated grpc-gateway
// registration. The gateway library names no service; the binaries hand it a list
// (internal/shopapi for the shop, converted from the generated gen/registry.Service, which has
// the same fields: keep them so).
type Service struct {
	// Desc is the service's descriptor. Required.
	Desc protoreflect.ServiceDescriptor
	// Register registers the service's generated handlers on the mux, calling the upstream
	// through cc: Register<Name>HandlerClient(ctx, mux, New<Name>Client(cc)). Required. cc is
	// the gateway's upstream.Conn, which sends unary calls and streams over separate
	// connections; the generated Register<Name>Handler, which takes a *grpc.ClientConn, cannot.
	Register func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error
}
