// Package shopapi lists the shop's gRPC services that the gateway serves: each one's
// descriptor (its google.api.http routes and gateway.v1 policy options) and its generated
// grpc-gateway registration. The gateway library knows no service by name; the binaries
// (cmd/gateway, cmd/shop) and the tests hand this list to server.Options.Services. A new
// service is one line here.
package shopapi

import (
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/acme/shopgate/gateway/routes"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
)

// Services returns the shop's services, sorted by full name.
func Services() []routes.Service {
	return []routes.Service{
		{Desc: inventoryv1.File_shop_inventory_v1_inventory_proto.Services().ByName("InventoryService"), Register: inventoryv1.RegisterInventoryServiceHandler},
		{Desc: orderv1.File_shop_order_v1_order_proto.Services().ByName("OrderService"), Register: orderv1.RegisterOrderServiceHandler},
		{Desc: paymentv1.File_shop_payment_v1_payment_proto.Services().ByName("PaymentService"), Register: paymentv1.RegisterPaymentServiceHandler},
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
