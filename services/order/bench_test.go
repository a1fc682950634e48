package order_test

import (
	"strconv"
	"testing"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/order"
)

// BenchmarkCreateOrder is one two-line order over gRPC (bufconn): two GetItem calls to the
// real inventory service, then the order, its items, the Idempotency-Key and OrderCreated in
// one immediate transaction on a real SQLite file.
func BenchmarkCreateOrder(b *testing.B) {
	h := newHarness(b, order.Options{})
	req := &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1, "sku-pear", 2)}
	i := 0
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		i++
		if _, err := h.client.CreateOrder(alice("idempotency-key", strconv.Itoa(i)), req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetOrder is one owner read of a two-line order over gRPC (bufconn).
func BenchmarkGetOrder(b *testing.B) {
	h := newHarness(b, order.Options{})
	o, err := h.client.CreateOrder(alice(), &orderv1.CreateOrderRequest{Items: lines("sku-apple", 1, "sku-pear", 2)})
	if err != nil {
		b.Fatal(err)
	}
	ctx := alice()
	req := &orderv1.GetOrderRequest{Id: o.GetId()}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		if _, err := h.client.GetOrder(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}
