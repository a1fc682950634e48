package order_test

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/order"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func violation(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			return br.GetFieldViolations()[0].GetField()
		}
	}
	return ""
}

func TestCreateOrderValidation(t *testing.T) {
	h := newHarness(t, order.Options{})
	many := make([]*orderv1.OrderLine, 51)
	for i := range many {
		many[i] = &orderv1.OrderLine{Sku: fmt.Sprintf("sku-%d", i), Quantity: 1}
	}
	tests := []struct {
		name      string
		ctx       context.Context
		req       *orderv1.CreateOrderRequest
		wantCode  codes.Code
		wantField string
		wantMsg   string
	}{
		{name: "anonymous", ctx: context.Background(), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)}, wantCode: codes.Unauthenticated},
		{name: "no lines", ctx: alice(), req: &orderv1.CreateOrderRequest{}, wantCode: codes.InvalidArgument, wantField: "items"},
		{name: "51 lines", ctx: alice(), req: &orderv1.CreateOrderRequest{Items: many}, wantCode: codes.InvalidArgument, wantField: "items"},
		{name: "zero quantity", ctx: alice(), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1, "sku-pear", 0)},
			wantCode: codes.InvalidArgument, wantField: "items[1].quantity", wantMsg: "items[1].quantity: must be between 1 and 1000"},
		{name: "quantity over 1000", ctx: alice(), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1001)}, wantCode: codes.InvalidArgument, wantField: "items[0].quantity"},
		{name: "duplicate sku", ctx: alice(), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1, "sku-apple", 2)}, wantCode: codes.InvalidArgument, wantField: "items[1].sku"},
		{name: "malformed sku", ctx: alice(), req: &orderv1.CreateOrderRequest{Items: lines("sku apple", 1)}, wantCode: codes.InvalidArgument, wantField: "items[0].sku"},
		{name: "unknown sku", ctx: alice(), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1, "sku-ghost", 1)},
			wantCode: codes.InvalidArgument, wantField: "items[1].sku", wantMsg: "items[1].sku: unknown item"},
		{name: "mixed currencies", ctx: alice(), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1, "sku-euro", 1)}, wantCode: codes.InvalidArgument, wantField: "items[1].sku"},
		{name: "payment method with spaces", ctx: alice(), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1), PaymentMethod: "pm card"}, wantCode: codes.InvalidArgument, wantField: "payment_method"},
		{name: "empty idempotency key", ctx: alice("idempotency-key", ""), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)}, wantCode: codes.InvalidArgument, wantField: "Idempotency-Key"},
		{name: "idempotency key too long", ctx: alice("idempotency-key", strings.Repeat("k", 256)), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)}, wantCode: codes.InvalidArgument, wantField: "Idempotency-Key"},
		{name: "idempotency key twice", ctx: alice("idempotency-key", "a", "idempotency-key", "b"), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)}, wantCode: codes.InvalidArgument, wantField: "Idempotency-Key"},
		{name: "valid", ctx: alice("idempotency-key", strings.Repeat("k", 255)), req: &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)}, wantCode: codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := h.client.CreateOrder(tc.ctx, tc.req)
			if status.Code(err) != tc.wantCode {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.wantCode)
			}
			if tc.wantField != "" && violation(err) != tc.wantField {
				t.Fatalf("violation on %q, want %q (%v)", violation(err), tc.wantField, err)
			}
			if tc.wantMsg != "" && status.Convert(err).Message() != tc.wantMsg {
				t.Fatalf("message %q, want %q", status.Convert(err).Message(), tc.wantMsg)
			}
		})
	}
	t.Run("nothing written by refused requests", func(t *testing.T) {
		resp, err := h.client.ListOrders(admin(), &orderv1.ListOrdersRequest{})
		if err != nil || len(resp.GetOrders()) != 1 {
			t.Fatalf("orders: %d, %v; want only the valid one", len(resp.GetOrders()), err)
		}
	})
}

func TestCreateOrder(t *testing.T) {
	h := newHarness(t, order.Options{})
	ctx := alice("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "tracestate", "acme=1")
	o := h.create(t, ctx, lines("sku-apple", 3, "sku-pear", 2)...)
	if o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING || o.GetCustomerId() != "alice" ||
		o.GetTotalCents() != 3*120+2*95 || o.GetCurrency() != "USD" || o.GetPaymentMethod() != "pm_card_ok" || o.GetId() == "" {
		t.Fatalf("created %v", o)
	}
	got, err := h.client.GetOrder(alice(), &orderv1.GetOrderRequest{Id: o.GetId()})
	if err != nil || !proto.Equal(got, o) {
		t.Fatalf("read back %v, %v; want %v", got, err, o)
	}
	envs := h.outbox(t, o.GetId())
	if len(envs) != 1 || envs[0].GetType() != "shop.events.v1.OrderCreated" || envs[0].GetSource() != "order" {
		t.Fatalf("outbox %v", types(envs))
	}
	if tc := envs[0].GetTraceContext(); tc["traceparent"] != "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01" || tc["tracestate"] != "acme=1" {
		t.Fatalf("trace context %v", tc)
	}
	ev := &eventsv1.OrderCreated{}
	if err := envs[0].GetPayload().UnmarshalTo(ev); err != nil {
		t.Fatal(err)
	}
	if ev.GetCustomerId() != "alice" || ev.GetTotalCents() != o.GetTotalCents() || len(ev.GetLines()) != 2 ||
		ev.GetLines()[0].GetUnitPriceCents() != 120 || ev.GetPaymentMethod() != "pm_card_ok" {
		t.Fatalf("OrderCreated %v", ev)
	}
}

func TestInventoryUnavailable(t *testing.T) {
	h := newHarness(t, order.Options{})
	h.stopInventory()
	ctx, cancel := context.WithTimeout(alice(), 5*time.Second)
	defer cancel()
	_, err := h.client.CreateOrder(ctx, &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)})
	if status.Code(err) != codes.Unavailable || strings.Contains(status.Convert(err).Message(), "bufconn") {
		t.Fatalf("got %v, want UNAVAILABLE with a generic message", err)
	}
}

func TestOwnership(t *testing.T) {
	h := newHarness(t, order.Options{})
	mine := h.create(t, alice(), lines("sku-apple", 1)...)
	tests := []struct {
		name     string
		ctx      context.Context
		id       string
		wantCode codes.Code
	}{
		{"owner", alice(), mine.GetId(), codes.OK},
		{"admin", admin(), mine.GetId(), codes.OK},
		{"someone else", bob(), mine.GetId(), codes.NotFound},
		{"anonymous", context.Background(), mine.GetId(), codes.Unauthenticated},
		{"unknown id", alice(), "0123456789abcdef", codes.NotFound},
		{"malformed id", alice(), "../x", codes.InvalidArgument},
		{"empty id", alice(), "", codes.InvalidArgument},
	}
	for _, tc := range tests {
		t.Run("get/"+tc.name, func(t *testing.T) {
			_, err := h.client.GetOrder(tc.ctx, &orderv1.GetOrderRequest{Id: tc.id})
			if status.Code(err) != tc.wantCode {
				t.Fatalf("GetOrder code %v, want %v", status.Code(err), tc.wantCode)
			}
		})
	}
	t.Run("cancel/someone else", func(t *testing.T) {
		_, err := h.client.CancelOrder(bob(), &orderv1.CancelOrderRequest{Id: mine.GetId()})
		if status.Code(err) != codes.NotFound {
			t.Fatalf("got %v", err)
		}
		got, _ := h.client.GetOrder(alice(), &orderv1.GetOrderRequest{Id: mine.GetId()})
		if got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
			t.Fatalf("bob changed alice's order: %v", got.GetStatus())
		}
	})
}

func TestCancelOrder(t *testing.T) {
	h := newHarness(t, order.Options{})
	o := h.create(t, alice(), lines("sku-apple", 1)...)
	tests := []struct {
		name     string
		ctx      context.Context
		wantCode codes.Code
	}{
		{"owner cancels a pending order", alice(traceMD(cancelTrace)...), codes.OK},
		{"a cancelled order cannot be cancelled", alice(), codes.FailedPrecondition},
		{"not even by an admin", admin(), codes.FailedPrecondition},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.client.CancelOrder(tc.ctx, &orderv1.CancelOrderRequest{Id: o.GetId()})
			if status.Code(err) != tc.wantCode {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.wantCode)
			}
			if err == nil && (got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CANCELLED || got.GetStatusReason() != "cancelled by customer") {
				t.Fatalf("cancelled order %v", got)
			}
		})
	}
	envs := h.outbox(t, o.GetId())
	if got := types(envs); fmt.Sprint(got) != "[shop.events.v1.OrderCreated shop.events.v1.OrderCancelled]" {
		t.Fatalf("outbox %v", got)
	}
	if got := envs[1].GetTraceContext(); !maps.Equal(got, cancelTrace) {
		t.Fatalf("OrderCancelled trace context %v, want the cancel request's %v", got, cancelTrace)
	}
	t.Run("a cancel without trace context records none", func(t *testing.T) {
		c := h.create(t, alice(traceMD(createTrace)...), lines("sku-apple", 1)...)
		if _, err := h.client.CancelOrder(alice(), &orderv1.CancelOrderRequest{Id: c.GetId()}); err != nil {
			t.Fatal(err)
		}
		envs := h.outbox(t, c.GetId())
		if len(envs) != 2 || envs[1].GetType() != cancelled || envs[1].GetTraceContext() != nil {
			t.Fatalf("outbox %v, last with trace context %v", types(envs), envs[len(envs)-1].GetTraceContext())
		}
	})
	t.Run("a confirmed order cannot be cancelled", func(t *testing.T) {
		c := h.create(t, alice(), lines("sku-apple", 1)...)
		confirm(t, h, c.GetId())
		_, err := h.client.CancelOrder(alice(), &orderv1.CancelOrderRequest{Id: c.GetId()})
		if status.Code(err) != codes.FailedPrecondition {
			t.Fatalf("got %v", err)
		}
	})
}

func confirm(t *testing.T, h *harness, id string) {
	t.Helper()
	ctx := context.Background()
	if err := h.svc.HandleStockReserved(ctx, "sr-"+id, &eventsv1.StockReserved{OrderId: id}); err != nil {
		t.Fatal(err)
	}
	if err := h.svc.HandlePaymentCaptured(ctx, "pc-"+id, &eventsv1.PaymentCaptured{OrderId: id, PaymentId: "pay-" + id}); err != nil {
		t.Fatal(err)
	}
}

func TestIdempotency(t *testing.T) {
	h := newHarness(t, order.Options{})
	key := func(k string) context.Context { return alice("idempotency-key", k) }
	first := h.create(t, key("k1"), lines("sku-apple", 1)...)

	tests := []struct {
		name     string
		ctx      context.Context
		req      *orderv1.CreateOrderRequest
		wantCode codes.Code
		wantSame bool
	}{
		{"same key same body", key("k1"), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)}, codes.OK, true},
		{"explicit default method is the same body", key("k1"), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1), PaymentMethod: "pm_card_ok"}, codes.OK, true},
		{"same key other body", key("k1"), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 2)}, codes.FailedPrecondition, false},
		{"same key other customer", bob("idempotency-key", "k1"), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)}, codes.OK, false},
		{"other key", key("k2"), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)}, codes.OK, false},
		{"no key", alice(), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)}, codes.OK, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := h.client.CreateOrder(tc.ctx, tc.req)
			if status.Code(err) != tc.wantCode {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tc.wantCode)
			}
			if tc.wantCode == codes.FailedPrecondition {
				var info *errdetails.ErrorInfo
				for _, d := range status.Convert(err).Details() {
					if i, ok := d.(*errdetails.ErrorInfo); ok {
						info = i
					}
				}
				if info.GetReason() != "IDEMPOTENCY_KEY_REUSED" || info.GetDomain() != "shop.acme" {
					t.Fatalf("ErrorInfo %v", info)
				}
			}
			if err == nil && (got.GetId() == first.GetId()) != tc.wantSame {
				t.Fatalf("same order = %v, want %v", got.GetId() == first.GetId(), tc.wantSame)
			}
		})
	}
	t.Run("replay returns the current state", func(t *testing.T) {
		confirm(t, h, first.GetId())
		got, err := h.client.CreateOrder(key("k1"), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)})
		if err != nil || got.GetId() != first.GetId() || got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CONFIRMED {
			t.Fatalf("replay %v, %v", got, err)
		}
	})
	t.Run("expired key makes a new order", func(t *testing.T) {
		h.clock.Advance(order.IdempotencyTTL + time.Minute)
		got, err := h.client.CreateOrder(key("k1"), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 2)})
		if err != nil || got.GetId() == first.GetId() {
			t.Fatalf("after expiry: %v, %v", got.GetId(), err)
		}
		var keys int
		if err := h.store.DB().QueryRow(`SELECT COUNT(*) FROM idempotency_keys`).Scan(&keys); err != nil || keys != 1 {
			t.Fatalf("keys left after purge: %d, %v; want 1", keys, err)
		}
	})
}

func TestIdempotencyConcurrent(t *testing.T) {
	h := newHarness(t, order.Options{})
	const callers = 20
	ids := make([]string, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Go(func() {
			o, err := h.client.CreateOrder(alice("idempotency-key", "once"), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1)})
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = o.GetId()
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] || id == "" {
			t.Fatalf("different orders for one key: %v", ids)
		}
	}
	resp, err := h.client.ListOrders(admin(), &orderv1.ListOrdersRequest{})
	if err != nil || len(resp.GetOrders()) != 1 {
		t.Fatalf("%d orders stored, %v; want 1", len(resp.GetOrders()), err)
	}
	if n := len(h.outbox(t, ids[0])); n != 1 {
		t.Fatalf("%d OrderCreated events, want 1", n)
	}
}

func TestListOrdersPagination(t *testing.T) {
	h := newHarness(t, order.Options{})
	var aliceIDs, allIDs []string
	for i := range 10 {
		ctx := alice()
		if i%3 == 0 {
			ctx = bob()
		}
		o := h.create(t, ctx, lines("sku-apple", 1)...)
		allIDs = append([]string{o.GetId()}, allIDs...) // newest first
		if o.GetCustomerId() == "alice" {
			aliceIDs = append([]string{o.GetId()}, aliceIDs...)
		}
	}
	tests := []struct {
		name string
		ctx  context.Context
		size int32
		want []string
	}{
		{"alice, pages of 2", alice(), 2, aliceIDs},
		{"alice, one page", alice(), 0, aliceIDs},
		{"admin sees all, pages of 3", admin(), 3, allIDs},
		{"admin, pages of 1", admin(), 1, allIDs},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			tok := ""
			for pages := 0; ; pages++ {
				if pages > 20 {
					t.Fatal("pagination does not end")
				}
				resp, err := h.client.ListOrders(tc.ctx, &orderv1.ListOrdersRequest{PageSize: tc.size, PageToken: tok})
				if err != nil {
					t.Fatal(err)
				}
				for _, o := range resp.GetOrders() {
					got = append(got, o.GetId())
				}
				if tok = resp.GetNextPageToken(); tok == "" {
					break
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("got %v\nwant %v", got, tc.want)
			}
		})
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		req  *orderv1.ListOrdersRequest
		code codes.Code
	}{
		{"anonymous", context.Background(), &orderv1.ListOrdersRequest{}, codes.Unauthenticated},
		{"size 101", alice(), &orderv1.ListOrdersRequest{PageSize: 101}, codes.InvalidArgument},
		{"garbage token", alice(), &orderv1.ListOrdersRequest{PageToken: "%%%"}, codes.InvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := h.client.ListOrders(tc.ctx, tc.req); status.Code(err) != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
		})
	}
}

func TestRestartPersistence(t *testing.T) {
	h := newHarness(t, order.Options{})
	o := h.create(t, alice("idempotency-key", "k"), lines("sku-apple", 2)...)
	confirm(t, h, o.GetId())
	h.svc.Close()
	if err := h.store.Close(); err != nil {
		t.Fatal(err)
	}
	h.start(t, order.Options{})
	got, err := h.client.GetOrder(alice(), &orderv1.GetOrderRequest{Id: o.GetId()})
	if err != nil || got.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CONFIRMED || got.GetTotalCents() != 240 || len(got.GetItems()) != 1 {
		t.Fatalf("after restart: %v, %v", got, err)
	}
	again, err := h.client.CreateOrder(alice("idempotency-key", "k"), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 2)})
	if err != nil || again.GetId() != o.GetId() {
		t.Fatalf("idempotency key lost in restart: %v, %v", again.GetId(), err)
	}
}

// TestCreateOrderFiftyLines: the largest order is priced line by line (concurrently) and the
// first bad line, in line order, names the error.
func TestCreateOrderFiftyLines(t *testing.T) {
	h := newHarness(t, order.Options{})
	var want int64
	full := make([]*orderv1.OrderLine, 50)
	for i := range full {
		sku := fmt.Sprintf("sku-%02d", i)
		price := int64(100 + i)
		if _, err := h.inv.UpsertItem(admin(), &inventoryv1.UpsertItemRequest{Item: &inventoryv1.Item{
			Sku: sku, Name: sku, PriceCents: price, Currency: "USD", Available: 10,
		}}); err != nil {
			t.Fatal(err)
		}
		full[i] = &orderv1.OrderLine{Sku: sku, Quantity: int32(i%3 + 1)}
		want += price * int64(i%3+1)
	}
	bad := make([]*orderv1.OrderLine, 50)
	copy(bad, full)
	bad[45] = &orderv1.OrderLine{Sku: "sku-ghost-45", Quantity: 1}
	bad[37] = &orderv1.OrderLine{Sku: "sku-ghost-37", Quantity: 1}
	tests := []struct {
		name      string
		lines     []*orderv1.OrderLine
		wantCode  codes.Code
		wantField string
	}{
		{"all known", full, codes.OK, ""},
		{"two unknown: the first is reported", bad, codes.InvalidArgument, "items[37].sku"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o, err := h.client.CreateOrder(alice(), &orderv1.CreateOrderRequest{Items: tc.lines})
			if status.Code(err) != tc.wantCode || violation(err) != tc.wantField {
				t.Fatalf("got %v (field %q), want %v %q", err, violation(err), tc.wantCode, tc.wantField)
			}
			if err == nil && (o.GetTotalCents() != want || len(o.GetItems()) != 50 || o.GetItems()[49].GetUnitPriceCents() != 149) {
				t.Fatalf("total %d with %d items, want %d", o.GetTotalCents(), len(o.GetItems()), want)
			}
		})
	}
}
