package sagatest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
)

// TestEveryEventDeliveredTwice makes every relay publish each event twice under two message
// ids, so that the broker delivers every event twice: each effect must still happen once.
func TestEveryEventDeliveredTwice(t *testing.T) {
	b := externalBroker(t)
	s := newStack(t, b, stackOptions{common: []string{"-relay-duplicate-for-testing"}})
	for i, o := range outcomes {
		t.Run(o.name, func(t *testing.T) {
			o.check(t, s, fmt.Sprintf("SKU-TWICE-%d", i))
		})
	}
	counts := b.subjectCounts(t)
	if got := counts["shop.events.v1.OrderCreated"]; got != 2*len(outcomes) {
		t.Fatalf("stream holds %d OrderCreated, want every one twice: %d (all: %v)", got, 2*len(outcomes), counts)
	}
}

// TestServiceKilledBetweenCommitAndPublish runs one service with its relay off, waits until it
// has committed its step of the saga (the outbox row is written, not published), kills it with
// SIGKILL and restarts it normally: the event still goes out and the order completes.
func TestServiceKilledBetweenCommitAndPublish(t *testing.T) {
	tests := []struct {
		service   string
		committed func(s *stack, orderID, sku string) bool // the service's step is in its database
		unsent    string                                   // the event type that must not be out yet
	}{
		{"orderd", func(s *stack, orderID, sku string) bool { return true }, "shop.events.v1.OrderCreated"},
		{"inventoryd", func(s *stack, orderID, sku string) bool { return s.item(sku).GetReserved() == 2 }, "shop.events.v1.StockReserved"},
		{"paymentd", func(s *stack, orderID, sku string) bool { return s.paymentStatuses(orderID)[captured] == 1 }, "shop.events.v1.PaymentCaptured"},
	}
	for _, tt := range tests {
		t.Run(tt.service, func(t *testing.T) {
			b := externalBroker(t)
			s := newStack(t, b, stackOptions{once: map[string][]string{tt.service: {"-relay=false"}}})
			const sku = "SKU-KILL"
			s.putItem(sku, 5, 100)
			order := s.createOrder("bob", sku, 2, "pm_card_ok")
			eventually(t, 15*time.Second, tt.service+" did not commit its step", func() bool { return tt.committed(s, order.GetId(), sku) })
			if n := b.subjectCounts(t)[tt.unsent]; n != 0 {
				t.Fatalf("%s published %d %s with its relay off", tt.service, n, tt.unsent)
			}
			if o, err := s.getOrder("bob", order.GetId()); err != nil || o.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
				t.Fatalf("order is %v (%v) before the restart, want PENDING", o.GetStatus(), err)
			}
			p := map[string]*proc{"orderd": s.order, "paymentd": s.payment, "inventoryd": s.inventory}[tt.service]
			p.kill()
			p.start()
			final := s.waitFinal("bob", order.GetId(), 15*time.Second)
			if final.GetStatus() != confirmed {
				t.Fatalf("order ended %v %q, want CONFIRMED", final.GetStatus(), final.GetStatusReason())
			}
			eventually(t, 10*time.Second, "stock not taken", func() bool {
				it := s.item(sku)
				return it.GetAvailable() == 3 && it.GetReserved() == 0
			})
			if got := b.subjectCounts(t)[tt.unsent]; got != 1 {
				t.Fatalf("stream holds %d %s, want 1", got, tt.unsent)
			}
		})
	}
}

// TestBrokerRestartMidFlow stops the broker while orders are in flight and creates more while it
// is down: every order still completes, and the stock adds up.
func TestBrokerRestartMidFlow(t *testing.T) {
	tests := []struct {
		name    string
		broker  func(t *testing.T) *broker
		restart func(s *stack)
	}{
		{"external server stopped and started", ownBroker, nil},
		{"embedded in inventoryd, process killed and restarted", brokerInInventory, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.broker(t)
			s := newStack(t, b, stackOptions{})
			const sku, n = "SKU-RESTART", 6
			s.putItem(sku, 20, 100)
			var ids []string
			for range n / 2 {
				ids = append(ids, s.createOrder("carol", sku, 1, "").GetId())
			}
			if b.embedded != nil {
				b.embedded.Stop()
			} else {
				s.inventory.kill()
			}
			if b.embedded != nil {
				// Orders are still accepted while the broker is down: their events wait in the outbox.
				for range n / 2 {
					ids = append(ids, s.createOrder("carol", sku, 1, "").GetId())
				}
				if err := b.embedded.Start(); err != nil {
					t.Fatal(err)
				}
			} else {
				s.inventory.start()
				for range n / 2 {
					ids = append(ids, s.createOrder("carol", sku, 1, "").GetId())
				}
			}
			for _, id := range ids {
				if o := s.waitFinal("carol", id, 30*time.Second); o.GetStatus() != confirmed {
					t.Fatalf("order %s ended %v %q, want CONFIRMED", id, o.GetStatus(), o.GetStatusReason())
				}
			}
			eventually(t, 10*time.Second, "stock does not add up", func() bool {
				it := s.item(sku)
				return it.GetAvailable() == 20-n && it.GetReserved() == 0
			})
		})
	}
}

// TestConcurrentOrdersAgainstScarceStock places 100 one-unit orders at once against 10 units:
// exactly 10 are confirmed, the stock ends at 0 and is never negative on the way.
func TestConcurrentOrdersAgainstScarceStock(t *testing.T) {
	s := newStack(t, externalBroker(t), stackOptions{})
	const sku, stock, orders = "SKU-SCARCE", 10, 100
	s.putItem(sku, stock, 100)

	// Sample the stock while the flow runs.
	var samples atomic.Int64
	var bad atomic.Pointer[inventoryv1.Item]
	stopSampling := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stopSampling:
				return
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			it, err := s.inv.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: sku})
			cancel()
			if err == nil {
				samples.Add(1)
				if it.GetAvailable() < 0 || it.GetReserved() < 0 || it.GetAvailable()+it.GetReserved() > stock {
					bad.Store(it)
				}
			}
		}
	}()
	defer func() { close(stopSampling); sampler.Wait() }()

	ids := make([]string, orders)
	errs := make(chan error, orders)
	var wg sync.WaitGroup
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			customer := fmt.Sprintf("c%d", i%7)
			o, err := s.ord.CreateOrder(as(context.Background(), customer, "customer"), &orderv1.CreateOrderRequest{
				Items: []*orderv1.OrderLine{{Sku: sku, Quantity: 1}},
			})
			if err != nil {
				errs <- err
				return
			}
			ids[i] = customer + "/" + o.GetId()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("creating an order: %v", err)
	}
	count := map[orderv1.OrderStatus]int{}
	for _, ref := range ids {
		customer, id, _ := cut(ref)
		count[s.waitFinal(customer, id, 60*time.Second).GetStatus()]++
	}
	if count[confirmed] != stock || count[cancelled] != orders-stock {
		t.Fatalf("orders ended %v, want %d CONFIRMED and %d CANCELLED", count, stock, orders-stock)
	}
	eventually(t, 15*time.Second, "stock did not settle at 0 available, 0 reserved", func() bool {
		it := s.item(sku)
		return it.GetAvailable() == 0 && it.GetReserved() == 0
	})
	// Refunds of the cancelled orders' payments follow the cancellations: poll until they settle.
	captures := 0
	eventually(t, 15*time.Second, "payments left captured do not settle at one per confirmed order", func() bool {
		captures = 0
		for _, ref := range ids {
			_, id, _ := cut(ref)
			captures += s.paymentStatuses(id)[captured]
		}
		return captures == stock
	})
	if it := bad.Load(); it != nil {
		t.Fatalf("stock sampled at available=%d reserved=%d", it.GetAvailable(), it.GetReserved())
	}
	if samples.Load() < 10 {
		t.Fatalf("only %d stock samples taken during the flow", samples.Load())
	}
	t.Logf("%d stock samples, all within [0, %d]", samples.Load(), stock)
}

func cut(ref string) (customer, id string, ok bool) {
	for i := range len(ref) {
		if ref[i] == '/' {
			return ref[:i], ref[i+1:], true
		}
	}
	return "", ref, false
}

// TestWatchSeesPendingThenFinal watches an order from its creation: the stream shows PENDING,
// then the final status, and ends.
func TestWatchSeesPendingThenFinal(t *testing.T) {
	// orderd holds the order's confirmation back (relay of paymentd off on its first run) until
	// the watch is open, so the watch must see the change happen.
	s := newStack(t, externalBroker(t), stackOptions{once: map[string][]string{"paymentd": {"-relay=false"}}})
	const sku = "SKU-WATCH"
	s.putItem(sku, 3, 100)
	order := s.createOrder("dave", sku, 1, "")
	ctx := ctxTimeout(t, 30*time.Second)
	stream, err := s.ord.WatchOrder(as(ctx, "dave", "customer"), &orderv1.WatchOrderRequest{Id: order.GetId()})
	if err != nil {
		t.Fatal(err)
	}
	first, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if first.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_PENDING {
		t.Fatalf("first watched status %v, want PENDING", first.GetStatus())
	}
	eventually(t, 15*time.Second, "payment not captured", func() bool { return s.paymentStatuses(order.GetId())[captured] == 1 })
	s.payment.kill()
	s.payment.start() // its relay now publishes PaymentCaptured
	var statuses []orderv1.OrderStatus
	for {
		o, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("watch ended with %v after %v", err, statuses)
		}
		statuses = append(statuses, o.GetStatus())
	}
	if len(statuses) == 0 || statuses[len(statuses)-1] != confirmed {
		t.Fatalf("watch saw %v after PENDING, want it to end with CONFIRMED", statuses)
	}
	for _, st := range statuses[:len(statuses)-1] {
		if st != orderv1.OrderStatus_ORDER_STATUS_PENDING {
			t.Fatalf("watch saw %v, a final status before the last message", statuses)
		}
	}
}
