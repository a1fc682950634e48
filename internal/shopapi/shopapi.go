// Package shopapi lists the shop's gRPC services that the gateway serves: each one's
// descriptor (its google.api.http routes and gateway.v1 policy options) and its generated
// grpc-gateway registration. The gateway library knows no service by name; the binaries
// (cmd/gateway, cmd/shop) and the tests hand this list to server.Options.Services. A new
// service is one line here.
package shopapi

import (
	"context"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/acme/shopgate/gateway/routes"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
)

// Services returns the shop's services, sorted by full name.
func Services() []routes.Service {
	return []routes.Service{
		{Desc: inventoryv1.File_shop_inventory_v1_inventory_proto.Services().ByName("InventoryService"),
			Register: register(inventoryv1.RegisterInventoryServiceHandlerClient, inventoryv1.NewInventoryServiceClient)},
		{Desc: orderv1.File_shop_order_v1_order_proto.Services().ByName("OrderService"),
			Register: register(orderv1.RegisterOrderServiceHandlerClient, orderv1.NewOrderServiceClient)},
		{Desc: paymentv1.File_shop_payment_v1_payment_proto.Services().ByName("PaymentService"),
			Register: register(paymentv1.RegisterPaymentServiceHandlerClient, paymentv1.NewPaymentServiceClient)},
		{Desc: storefrontv1.File_shop_storefront_v1_storefront_proto.Services().ByName("StorefrontService"),
			Register: register(storefrontv1.RegisterStorefrontServiceHandlerClient, storefrontv1.NewStorefrontServiceClient)},
	}
}

// register makes a routes.Service Register from a service's generated
// Register<Name>HandlerClient and New<Name>Client: the handlers call the upstream through any
// grpc.ClientConnInterface (the gateway's upstream.Conn).
func register[C any](handlerClient func(context.Context, *runtime.ServeMux, C) error, newClient func(grpc.ClientConnInterface) C) func(context.Context, *runtime.ServeMux, grpc.ClientConnInterface) error {
	return func(ctx context.Context, mux *runtime.ServeMux, cc grpc.ClientConnInterface) error {
		return handlerClient(ctx, mux, newClient(cc))
	}
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
