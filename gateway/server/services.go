package server

import (
	"context"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// service is one gRPC service the gateway can serve: its descriptor (routes and policy options)
// and its generated grpc-gateway registration.
type service struct {
	desc     protoreflect.ServiceDescriptor
	register func(context.Context, *runtime.ServeMux, *grpc.ClientConn) error
}

// services are the services compiled into the gateway. A new service is one line here.
var services = []service{
	{inventoryv1.File_shop_inventory_v1_inventory_proto.Services().ByName("InventoryService"), inventoryv1.RegisterInventoryServiceHandler},
	{orderv1.File_shop_order_v1_order_proto.Services().ByName("OrderService"), orderv1.RegisterOrderServiceHandler},
	{paymentv1.File_shop_payment_v1_payment_proto.Services().ByName("PaymentService"), paymentv1.RegisterPaymentServiceHandler},
}

// Services returns the descriptors of every service compiled into the gateway, whether or not
// the configuration gives it an upstream (the route table and `gateway routes` list them all).
func Services() []protoreflect.ServiceDescriptor {
	out := make([]protoreflect.ServiceDescriptor, len(services))
	for i, s := range services {
		out[i] = s.desc
	}
	return out
}

func serviceByName(name string) (service, bool) {
	for _, s := range services {
		if string(s.desc.FullName()) == name {
			return s, true
		}
	}
	return service{}, false
}
