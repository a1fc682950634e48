package order_test

import (
	"context"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/order"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// TestForgedPassport calls the real order service over a real gRPC connection as a client
// inside the network would, bypassing the gateway: only a passport signed by the trusted key,
// for this service and not expired, names a caller. A forged admin must not list every order.
func TestForgedPassport(t *testing.T) {
	h := newHarness(t, order.Options{})
	h.create(t, alice(), lines("sku-apple", 1)...)
	h.create(t, bob(), lines("sku-pear", 1)...)
	root := passport.Caller{Subject: "root", Roles: []string{passport.RoleAdmin}, Auth: "jwt"}
	signed := func(c passporttest.Claims) metadata.MD {
		c.Caller = root
		return metadata.Pairs(passport.MDPassport, passporttest.Token(c))
	}
	tests := []struct {
		name string
		md   metadata.MD
		want codes.Code
	}{
		{"x-user-roles: admin", metadata.Pairs("x-user-id", "root", "x-user-roles", "admin", "x-user-auth", "jwt"), codes.Unauthenticated},
		{"expired", signed(passporttest.Claims{IssuedAt: time.Now().Add(-time.Hour), TTL: 5 * time.Minute}), codes.Unauthenticated},
		{"signed by another key", signed(passporttest.Claims{Key: passporttest.OtherKey}), codes.Unauthenticated},
		{"for another service", signed(passporttest.Claims{Audience: []string{"shop.payment.v1.PaymentService"}}), codes.Unauthenticated},
		{"the gateway's", signed(passporttest.Claims{Audience: []string{orderv1.OrderService_ServiceDesc.ServiceName}}), codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := h.client.ListOrders(metadata.NewOutgoingContext(context.Background(), tt.md), &orderv1.ListOrdersRequest{})
			if status.Code(err) != tt.want {
				t.Fatalf("ListOrders: %v, want %v", err, tt.want)
			}
			if tt.want == codes.OK && len(resp.GetOrders()) != 2 {
				t.Errorf("the admin sees %d orders, want 2", len(resp.GetOrders()))
			}
		})
	}
}
