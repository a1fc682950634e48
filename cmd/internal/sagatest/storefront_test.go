package sagatest

// The storefront end to end: storefrontd as a process of its own behind cmd/gateway, in front
// of orderd, paymentd and inventoryd, calling them with the caller's passport that the gateway
// signed for the storefront and its delegates.

import (
	"context"
	"encoding/json"
	"github.com/acme/shopgate/cmd/internal/proctest"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
)

// startStorefront runs storefrontd in front of s's services; it is killed at the end of the
// test. Optional parts get 1s: half the route's 2s, so that a frozen dependency is left out
// well within the deadline, while the others have room to answer on a loaded machine.
func startStorefront(t *testing.T, s *stack) *proc {
	t.Helper()
	p := &proc{t: t, name: "storefrontd", bin: binaries(t), addr: freeAddr(t), log: filepath.Join(t.TempDir(), "storefrontd.log"),
		args: []string{"-passport-jwks", s.jwks, "-order-addr", s.order.addr, "-inventory-addr", s.inventory.addr,
			"-payment-addr", s.payment.addr, "-dependency-timeout", "1s"}}
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("--- storefrontd log:\n%s", proctest.Tail(p.logs(), 60))
		}
	})
	p.start()
	return p
}

// orderView is GET /v1/storefront/orders/{id}'s answer, as far as the tests read it.
type orderView struct {
	Order struct {
		ID string `json:"id"`
	} `json:"order"`
	Lines []struct {
		Line struct {
			Sku string `json:"sku"`
		} `json:"line"`
		Name              string `json:"name"`
		CurrentPriceCents string `json:"currentPriceCents"`
	} `json:"lines"`
	Payment *struct {
		Status      string `json:"status"`
		AmountCents string `json:"amountCents"`
	} `json:"payment"`
	Missing []string `json:"missing"`
}

// TestStorefront runs the storefront behind the real gateway on a real stack: the full order
// view, another customer's order (404), the home screen, then one dependency at a time taken
// away: inventory frozen (SIGSTOP: the items are left out within the route's 2s deadline),
// paymentd killed (the payment is left out), orderd killed (the view is 503, the home screen
// keeps its catalogue).
func TestStorefront(t *testing.T) {
	b := externalBroker(t)
	s := newStack(t, b, stackOptions{})
	sf := startStorefront(t, s)
	g := startGateway(t, s, gatewayOptions{storefront: sf.addr, extra: "defaults: {rate_limit: {requests: 100000, per: 1s}}\n"})
	const sku = "SKU-STOREFRONT"
	s.putItem(sku, 10, 250)
	s.putItem(sku+"-2", 10, 99) // the catalogue's first page holds two items
	alice, bob := g.token("alice", "customer"), g.token("bob", "customer")
	id, err := g.createOrder(alice, sku, 2, "sf-1", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if o := s.waitFinal("alice", id, 30*time.Second); o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CONFIRMED {
		t.Fatalf("order ended %v", o.GetStatus())
	}

	// get sends GET path as token's caller and decodes a 200 into out; it returns the status
	// and how long the answer took.
	get := func(t *testing.T, path, token string, out any) (int, time.Duration) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		began := time.Now()
		code, body, err := g.do(ctx, "GET", path, token, nil, "")
		took := time.Since(began)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		if code == 200 && out != nil {
			if err := json.Unmarshal(body, out); err != nil {
				t.Fatalf("GET %s: %v in %s", path, err, body)
			}
		}
		t.Logf("GET %s: %d in %v: %s", path, code, took.Round(time.Millisecond), body)
		return code, took
	}
	view := func(t *testing.T, token string, wantCode int, wantMissing []string) orderView {
		t.Helper()
		var v orderView
		code, took := get(t, "/v1/storefront/orders/"+id, token, &v)
		if code != wantCode {
			t.Fatalf("order view: %d, want %d", code, wantCode)
		}
		if took > 2*time.Second {
			t.Errorf("order view answered after %v, beyond the route's 2s timeout", took)
		}
		if code == 200 && (v.Order.ID != id || len(v.Lines) != 1 || v.Lines[0].Line.Sku != sku || !slices.Equal(v.Missing, wantMissing)) {
			t.Fatalf("order view %+v, want order %s with its line, missing %q", v, id, wantMissing)
		}
		return v
	}

	t.Run("full view", func(t *testing.T) {
		v := view(t, alice, 200, nil)
		if v.Lines[0].Name != "Item "+sku || v.Lines[0].CurrentPriceCents != "250" {
			t.Errorf("line %+v, want the item's name and current price", v.Lines[0])
		}
		if v.Payment == nil || v.Payment.Status != "PAYMENT_STATUS_CAPTURED" || v.Payment.AmountCents != "500" {
			t.Errorf("payment %+v, want captured 500", v.Payment)
		}
	})
	t.Run("another customer's order", func(t *testing.T) {
		view(t, bob, 404, nil)
	})
	t.Run("home", func(t *testing.T) {
		var h struct {
			RecentOrders []struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			} `json:"recentOrders"`
			Catalogue []json.RawMessage `json:"catalogue"`
			Missing   []string          `json:"missing"`
		}
		if code, _ := get(t, "/v1/storefront/home?catalogue_page_size=2", alice, &h); code != 200 || len(h.RecentOrders) != 1 ||
			h.RecentOrders[0].ID != id || h.RecentOrders[0].Status != "ORDER_STATUS_CONFIRMED" || len(h.Catalogue) != 2 || len(h.Missing) != 0 {
			t.Fatalf("home: %d %+v", code, h)
		}
		if code, _ := get(t, "/v1/storefront/home", "", nil); code != 401 {
			t.Fatalf("home without a token: %d, want 401", code)
		}
	})
	t.Run("a passport for the storefront alone is refused by the order service", func(t *testing.T) {
		caller := passport.Caller{Subject: "alice", Roles: []string{"customer"}, Auth: "jwt"}
		for _, tc := range []struct {
			aud  []string
			want codes.Code
		}{
			{[]string{storefrontv1.StorefrontService_ServiceDesc.ServiceName}, codes.Unauthenticated},
			{[]string{storefrontv1.StorefrontService_ServiceDesc.ServiceName, orderv1.OrderService_ServiceDesc.ServiceName}, codes.OK},
		} {
			ctx := metadata.NewOutgoingContext(ctxTimeout(t, 5*time.Second),
				metadata.Pairs(passport.MDPassport, passporttest.Token(passporttest.Claims{Caller: caller, Audience: tc.aud})))
			if _, err := s.ord.GetOrder(ctx, &orderv1.GetOrderRequest{Id: id}); status.Code(err) != tc.want {
				t.Errorf("GetOrder with a passport for %q: %v, want %v", tc.aud, err, tc.want)
			}
		}
	})
	t.Run("inventory frozen: partial within the deadline", func(t *testing.T) {
		s.inventory.freeze()
		defer s.inventory.thaw()
		v := view(t, alice, 200, []string{"items"})
		if v.Lines[0].Name != "" || v.Payment == nil {
			t.Errorf("view %+v: want the line without its item, with the payment", v)
		}
	})
	t.Run("payment down: partial", func(t *testing.T) {
		s.payment.kill()
		if v := view(t, alice, 200, []string{"payment"}); v.Payment != nil || v.Lines[0].Name != "Item "+sku {
			t.Errorf("view %+v: want the item, without the payment", v)
		}
	})
	t.Run("order down: 503", func(t *testing.T) {
		s.order.kill()
		view(t, alice, 503, nil)
		var h struct {
			Catalogue []json.RawMessage `json:"catalogue"`
			Missing   []string          `json:"missing"`
		}
		if code, _ := get(t, "/v1/storefront/home", alice, &h); code != 200 || len(h.Catalogue) == 0 || !slices.Equal(h.Missing, []string{"orders"}) {
			t.Fatalf("home with orderd down: %d %+v, want the catalogue without the orders", code, h)
		}
	})
}
