package passport

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
)

const (
	storefront = "shop.storefront.v1.StorefrontService"
	orders     = "shop.order.v1.OrderService"
	payments   = "shop.payment.v1.PaymentService"
)

// callOn runs the unary stage for method within route rt (nil: none) and returns the passport.
func callOn(t *testing.T, s *Signer, rt *policy.Route, method string) string {
	t.Helper()
	ctx := identity.NewContext(context.Background(), alice)
	if rt != nil {
		ctx = policy.NewContext(ctx, rt)
	}
	var tok []string
	err := s.Unary(ctx, method, nil, nil, nil, func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		md, _ := metadata.FromOutgoingContext(ctx)
		tok = md.Get(MDPassport)
		return nil
	})
	if err != nil || len(tok) != 1 {
		t.Fatalf("passport %q, %v", tok, err)
	}
	return tok[0]
}

// TestPassportDelegates: a route whose policy names delegates gets a passport whose aud names
// its service first and then the delegates; the cache keeps passports of different audiences
// for the same caller apart.
func TestPassportDelegates(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := newSigner(t, Config{}, clk)
	delegating := &policy.Route{RPC: "/" + storefront + "/GetOrderView", Service: storefront,
		Policy: policy.Policy{Delegates: []string{orders, payments, storefront, orders}}}
	plain := &policy.Route{RPC: "/" + storefront + "/GetOrderView", Service: storefront}
	tests := []struct {
		name   string
		route  *policy.Route
		method string
		want   []string
	}{
		{"no route", nil, "/" + storefront + "/GetOrderView", []string{storefront}},
		{"route without delegates", plain, "/" + storefront + "/GetOrderView", []string{storefront}},
		{"route with delegates, each once", delegating, "/" + storefront + "/GetOrderView", []string{storefront, orders, payments}},
		{"a call to another service than the route's", delegating, "/" + orders + "/GetOrder", []string{orders}},
		{"route without delegates again: not the cached delegating one", plain, "/" + storefront + "/GetHome", []string{storefront}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, _ := parse(t, s, callOn(t, s, tt.route, tt.method), clk.Now())
			if !slices.Equal(c.Audience, tt.want) {
				t.Fatalf("aud %q, want %q", c.Audience, tt.want)
			}
		})
	}
	before := s.Signatures()
	callOn(t, s, delegating, "/"+storefront+"/GetHome")
	callOn(t, s, plain, "/"+storefront+"/GetHome")
	if n := s.Signatures() - before; n != 0 {
		t.Fatalf("%d signatures for two warm audiences, want 0 (cached per audience)", n)
	}
}
