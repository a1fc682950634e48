package sagatest

import (
	"strings"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
)

const (
	confirmed = orderv1.OrderStatus_ORDER_STATUS_CONFIRMED
	cancelled = orderv1.OrderStatus_ORDER_STATUS_CANCELLED
	captured  = paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED
	declined  = paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED
	refunded  = paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED
)

// outcome is what one order must end in.
type outcome struct {
	name      string
	stock     int32 // available before the order
	qty       int32
	method    string
	status    orderv1.OrderStatus
	reason    string // substring of status_reason
	available int32  // after
	payments  map[paymentv1.PaymentStatus]int
}

var outcomes = []outcome{
	{name: "happy path", stock: 5, qty: 2, method: "pm_card_ok", status: confirmed, available: 3,
		payments: map[paymentv1.PaymentStatus]int{captured: 1}},
	{name: "out of stock", stock: 1, qty: 2, method: "pm_card_ok", status: cancelled, reason: "out of stock", available: 1,
		payments: map[paymentv1.PaymentStatus]int{refunded: 1}},
	{name: "declined card", stock: 5, qty: 2, method: "pm_card_declined", status: cancelled, reason: "declined", available: 5,
		payments: map[paymentv1.PaymentStatus]int{declined: 1}},
}

// check places the order of o for a fresh SKU on s and asserts where it ends.
func (o outcome) check(t *testing.T, s *stack, sku string) {
	t.Helper()
	s.putItem(sku, o.stock, 250)
	order := s.createOrder("alice", sku, o.qty, o.method)
	final := s.waitFinal("alice", order.GetId(), 15*time.Second)
	if final.GetStatus() != o.status || !strings.Contains(final.GetStatusReason(), o.reason) {
		t.Fatalf("order ended %v %q, want %v containing %q", final.GetStatus(), final.GetStatusReason(), o.status, o.reason)
	}
	if o.status == confirmed && final.GetPaymentId() == "" {
		t.Fatal("confirmed order has no payment id")
	}
	// Compensations run after the order is final: poll until the stock and payments settle.
	eventually(t, 10*time.Second, "stock and payments did not settle", func() bool {
		it := s.item(sku)
		return it.GetAvailable() == o.available && it.GetReserved() == 0 && equalCounts(s.paymentStatuses(order.GetId()), o.payments)
	})
	if o.status == confirmed {
		p := s.payments(order.GetId())[0]
		if p.GetAmountCents() != int64(o.qty)*250 || p.GetId() != final.GetPaymentId() {
			t.Fatalf("payment %v, want %d cents under id %s", p, int64(o.qty)*250, final.GetPaymentId())
		}
	}
}

// equalCounts compares payment counts. Where a refund is expected (an order cancelled for
// another reason than its payment), the payment service may meet the order or its
// cancellation first: a declined card is allowed in place of the refund, and so is no payment
// at all, when the cancellation came first (after a failed attempt at the order's event is
// redelivered behind it) and left a tombstone that the late OrderCreated respects. Either way
// nothing stays captured, which is checked first.
func equalCounts(got, want map[paymentv1.PaymentStatus]int) bool {
	if got[captured] != want[captured] {
		return false
	}
	total := func(m map[paymentv1.PaymentStatus]int) int { return m[captured] + m[declined] + m[refunded] }
	if want[refunded] > 0 && total(got) == 0 {
		return true // cancelled before the charge: no payment was ever made
	}
	return total(got) == total(want) && (want[declined] == 0 || got[declined] == want[declined])
}

func TestOrderOutcomes(t *testing.T) {
	s := newStack(t, externalBroker(t), stackOptions{})
	for i, o := range outcomes {
		t.Run(o.name, func(t *testing.T) {
			o.check(t, s, "SKU-OUT-"+string(rune('A'+i)))
		})
	}
}
