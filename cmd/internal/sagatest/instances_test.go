package sagatest

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
)

// TestInstancesShareTheWorkAndSurviveACrash runs two instances of paymentd and of inventoryd
// (same database, one durable consumer per service), places orders concurrently and kills one
// payment instance mid-flow: its unacknowledged events go to the other after the ack wait, and
// every order ends with the stock and payments adding up.
func TestInstancesShareTheWorkAndSurviveACrash(t *testing.T) {
	const ackWait = "2s"
	s := newStack(t, externalBroker(t), stackOptions{common: []string{"-events-ack-wait", ackWait}})
	second := func(p *proc) *proc {
		twin := &proc{t: t, name: p.name, bin: p.bin, addr: freeAddr(t), args: p.args,
			log: filepath.Join(filepath.Dir(p.log), p.name+"-2.log")}
		t.Cleanup(twin.kill)
		twin.start()
		return twin
	}
	payment2 := second(s.payment)
	second(s.inventory)

	const sku, stock, orders = "SKU-TWINS", 15, 40
	s.putItem(sku, stock, 100)
	ids := make([]string, orders)
	var wg sync.WaitGroup
	errs := make(chan error, orders)
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i == orders/2 {
				payment2.kill() // a crash in the middle of the flow
			}
			o, err := s.ord.CreateOrder(as(context.Background(), "erin", "customer"), &orderv1.CreateOrderRequest{
				Items: []*orderv1.OrderLine{{Sku: sku, Quantity: 1}},
			})
			if err != nil {
				errs <- fmt.Errorf("order %d: %w", i, err)
				return
			}
			ids[i] = o.GetId()
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	count := map[orderv1.OrderStatus]int{}
	for _, id := range ids {
		count[s.waitFinal("erin", id, 60*time.Second).GetStatus()]++
	}
	if count[confirmed] != stock || count[cancelled] != orders-stock {
		t.Fatalf("orders ended %v, want %d CONFIRMED and %d CANCELLED", count, stock, orders-stock)
	}
	eventually(t, 20*time.Second, "stock and payments do not add up", func() bool {
		it := s.item(sku)
		if it.GetAvailable() != 0 || it.GetReserved() != 0 {
			return false
		}
		captures := 0
		for _, id := range ids {
			captures += s.paymentStatuses(id)[captured]
		}
		return captures == stock
	})
}
