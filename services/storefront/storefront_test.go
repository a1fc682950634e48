package storefront_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/services/storefront"
)

func TestGetOrderView(t *testing.T) {
	s := newShop(t)
	paid := s.order(t, "alice", "pm_card_ok", "sku-apple:2", "sku-mug:1")
	unpaid := s.order(t, "alice", "", "sku-banana:1")
	bobs := s.order(t, "bob", "pm_card_ok", "sku-apple:1")
	tests := []struct {
		name        string
		caller      string
		aud         []string // of the caller's passport; default: delegated
		id          string
		faults      map[string]fault
		wantCode    codes.Code
		wantMissing []string
		wantNames   []string // each line's item name
		wantPayment paymentv1.PaymentStatus
	}{
		{name: "complete", caller: "alice", id: paid.GetId(), wantNames: []string{"Apple", "Mug"}, wantPayment: paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED},
		{name: "no payment yet is not missing", caller: "alice", id: unpaid.GetId(), wantNames: []string{"Banana"}},
		{name: "an admin sees any order", caller: "root", id: bobs.GetId(), wantNames: []string{"Apple"}, wantPayment: paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED},
		{name: "another customer's order", caller: "alice", id: bobs.GetId(), wantCode: codes.NotFound},
		{name: "unknown order", caller: "alice", id: "o-nope", wantCode: codes.NotFound},
		{name: "no id", caller: "alice", id: "", wantCode: codes.InvalidArgument},
		{name: "payment down: partial", caller: "alice", id: paid.GetId(), faults: map[string]fault{"payment": down},
			wantMissing: []string{"payment"}, wantNames: []string{"Apple", "Mug"}},
		{name: "inventory slow: partial", caller: "alice", id: paid.GetId(), faults: map[string]fault{"inventory": slow},
			wantMissing: []string{"items"}, wantNames: []string{"", ""}, wantPayment: paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED},
		{name: "both optional parts gone", caller: "alice", id: paid.GetId(), faults: map[string]fault{"inventory": down, "payment": slow},
			wantMissing: []string{"items", "payment"}, wantNames: []string{"", ""}},
		{name: "order down", caller: "alice", id: paid.GetId(), faults: map[string]fault{"order": down}, wantCode: codes.Unavailable},
		{name: "order connection closing: not the caller's cancellation", caller: "alice", id: paid.GetId(), faults: map[string]fault{"order": closing}, wantCode: codes.Unavailable},
		{name: "order slow", caller: "alice", id: paid.GetId(), faults: map[string]fault{"order": slow}, wantCode: codes.DeadlineExceeded},
		{name: "a passport for the storefront alone: the order service refuses it", caller: "alice", aud: []string{storefrontService},
			id: paid.GetId(), wantCode: codes.Internal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m, err := storefront.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			sf := s.storefront(t, storefront.Options{DependencyTimeout: 200 * time.Millisecond, Metrics: m}, tt.faults)
			aud := tt.aud
			if aud == nil {
				aud = delegated
			}
			ctx, cancel := context.WithTimeout(as(t, tt.caller, aud...), time.Second)
			defer cancel()
			began := time.Now()
			v, err := sf.GetOrderView(ctx, &storefrontv1.GetOrderViewRequest{Id: tt.id})
			if took := time.Since(began); err == nil && took > 900*time.Millisecond {
				t.Errorf("answered after %v, want within the dependency timeout", took)
			}
			if status.Code(err) != tt.wantCode {
				t.Fatalf("GetOrderView: %v, want %v", err, tt.wantCode)
			}
			if err != nil {
				if msg := status.Convert(err).Message(); strings.Contains(msg, "10.0.0.7") {
					t.Errorf("a dependency's error text reached the caller: %q", msg)
				}
				return
			}
			if v.GetOrder().GetId() != tt.id || len(v.GetLines()) != len(v.GetOrder().GetItems()) {
				t.Fatalf("view of %s: %v", tt.id, v)
			}
			var names []string
			for i, l := range v.GetLines() {
				names = append(names, l.GetName())
				if l.GetLine().GetSku() != v.GetOrder().GetItems()[i].GetSku() {
					t.Errorf("line %d: %v, want the order's line %v", i, l.GetLine(), v.GetOrder().GetItems()[i])
				}
				if l.GetName() != "" && (l.GetCurrentPriceCents() == 0 || l.GetCurrency() != "USD") {
					t.Errorf("line %d without its current price: %v", i, l)
				}
			}
			if !slices.Equal(names, tt.wantNames) || !slices.Equal(v.GetMissing(), tt.wantMissing) {
				t.Errorf("names %q missing %q, want %q and %q", names, v.GetMissing(), tt.wantNames, tt.wantMissing)
			}
			if p := v.GetPayment(); p.GetStatus() != tt.wantPayment || (p != nil && p.GetAmountCents() != v.GetOrder().GetTotalCents()) {
				t.Errorf("payment %v, want %v of %d", p, tt.wantPayment, v.GetOrder().GetTotalCents())
			}
			for _, part := range []string{"items", "payment"} {
				want := 0.0
				if slices.Contains(tt.wantMissing, part) {
					want = 1
				}
				if got := testutil.ToFloat64(m.Partial("GetOrderView", part)); got != want {
					t.Errorf("storefront_partial_total{part=%q} = %v, want %v", part, got, want)
				}
			}
		})
	}
}

func TestGetHome(t *testing.T) {
	s := newShop(t)
	first := s.order(t, "alice", "pm_card_ok", "sku-apple:1")
	second := s.order(t, "alice", "", "sku-mug:1")
	s.order(t, "bob", "", "sku-mug:1")
	tests := []struct {
		name          string
		req           *storefrontv1.GetHomeRequest
		faults        map[string]fault
		wantCode      codes.Code
		wantOrders    []string
		wantCatalogue int
		wantMissing   []string
	}{
		{name: "defaults", req: &storefrontv1.GetHomeRequest{}, wantOrders: []string{second.GetId(), first.GetId()}, wantCatalogue: 5},
		{name: "page sizes", req: &storefrontv1.GetHomeRequest{OrdersPageSize: 1, CataloguePageSize: 2}, wantOrders: []string{second.GetId()}, wantCatalogue: 2},
		{name: "page sizes cut to their maximum", req: &storefrontv1.GetHomeRequest{OrdersPageSize: 1000, CataloguePageSize: 1000}, wantOrders: []string{second.GetId(), first.GetId()}, wantCatalogue: 5},
		{name: "negative page size", req: &storefrontv1.GetHomeRequest{OrdersPageSize: -1}, wantCode: codes.InvalidArgument},
		{name: "orders down", req: &storefrontv1.GetHomeRequest{}, faults: map[string]fault{"order": down}, wantCatalogue: 5, wantMissing: []string{"orders"}},
		{name: "catalogue slow", req: &storefrontv1.GetHomeRequest{}, faults: map[string]fault{"inventory": slow}, wantOrders: []string{second.GetId(), first.GetId()}, wantMissing: []string{"catalogue"}},
		{name: "both gone", req: &storefrontv1.GetHomeRequest{}, faults: map[string]fault{"order": down, "inventory": slow}, wantCode: codes.Unavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sf := s.storefront(t, storefront.Options{DependencyTimeout: 200 * time.Millisecond}, tt.faults)
			h, err := sf.GetHome(as(t, "alice", delegated...), tt.req)
			if status.Code(err) != tt.wantCode {
				t.Fatalf("GetHome: %v, want %v", err, tt.wantCode)
			}
			if err != nil {
				return
			}
			var ids []string
			for _, o := range h.GetRecentOrders() {
				ids = append(ids, o.GetId())
			}
			if !slices.Equal(ids, tt.wantOrders) || len(h.GetCatalogue()) != tt.wantCatalogue || !slices.Equal(h.GetMissing(), tt.wantMissing) {
				t.Errorf("orders %q, %d items, missing %q; want %q, %d, %q", ids, len(h.GetCatalogue()), h.GetMissing(), tt.wantOrders, tt.wantCatalogue, tt.wantMissing)
			}
		})
	}
}

// TestBudget: a slow optional dependency is given up at the call's own deadline minus the
// reserve when that comes before DependencyTimeout, so the partial answer still arrives.
func TestBudget(t *testing.T) {
	s := newShop(t)
	o := s.order(t, "alice", "pm_card_ok", "sku-apple:1")
	sf := s.storefront(t, storefront.Options{DependencyTimeout: time.Hour, Reserve: 100 * time.Millisecond}, map[string]fault{"payment": slow})
	ctx, cancel := context.WithTimeout(as(t, "alice", delegated...), 400*time.Millisecond)
	defer cancel()
	v, err := sf.GetOrderView(ctx, &storefrontv1.GetOrderViewRequest{Id: o.GetId()})
	if err != nil || !slices.Equal(v.GetMissing(), []string{"payment"}) {
		t.Fatalf("GetOrderView: %v missing %q, want a view missing the payment", err, v.GetMissing())
	}
}

// TestNoPassport: without a caller the storefront asks no dependency.
func TestNoPassport(t *testing.T) {
	s := newShop(t)
	sf := s.storefront(t, storefront.Options{}, map[string]fault{"order": slow, "inventory": slow, "payment": slow})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := sf.GetHome(ctx, &storefrontv1.GetHomeRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("GetHome without a passport: %v, want UNAUTHENTICATED", err)
	}
}
