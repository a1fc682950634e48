package sagatest

// The fault suite (`go test -run TestFault ./cmd/internal/...`): the gateway and the services
// as separate processes on the machine's NATS, one part frozen, killed or flooded while
// clients keep calling through the gateway. Each test ends with checkOrders: every order placed
// during the fault ends CONFIRMED or CANCELLED, once, with stock and payments adding up.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/order"
	"google.golang.org/grpc/metadata"
)

// freeze stops p's process (SIGSTOP): its connections stay open and nothing answers on them.
// thaw resumes it (SIGCONT). A frozen process is still killed by the test's cleanup.
func (p *proc) freeze() { p.send(syscall.SIGSTOP) }
func (p *proc) thaw()   { p.send(syscall.SIGCONT) }

func (p *proc) send(sig syscall.Signal) {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		p.t.Fatalf("%s is not running", p.name)
	}
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatalf("%v to %s: %v", sig, p.name, err)
	}
}

// readyzWatch polls the gateway's /readyz every 50 ms until stopped and returns the answers
// that were not 200.
func readyzWatch(g *gateway) (stop func() []string) {
	done := make(chan struct{})
	var bad []string
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			if status, body := g.readyz(); status != 200 {
				bad = append(bad, fmt.Sprintf("%s %d %s", time.Now().Format("15:04:05.000"), status, strings.TrimSpace(body)))
			}
			select {
			case <-done:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	return func() []string { close(done); wg.Wait(); return bad }
}

// TestFaultUpstreamInstance runs two inventory instances (one database, one durable consumer)
// behind the gateway and takes one of them away while clients read items through the gateway
// and place orders: frozen with SIGSTOP (its connections stay open and silent) then thawed,
// or killed with SIGKILL then restarted. Reads keep succeeding through the other instance
// after at most 5 failures (the gateway ejects an instance after 5 consecutive failures;
// GetItem's route timeout is 500 ms here so that a failure is quick), /readyz stays 200 all
// along, and once the instance is back the gateway routes calls to it again. The orders
// placed before and during the fault all end CONFIRMED or CANCELLED once, the stock and the
// payments adding up (checkOrders): the events the instance held are redelivered to the other.
func TestFaultUpstreamInstance(t *testing.T) {
	const (
		getItem     = "/shop.inventory.v1.InventoryService/GetItem"
		maxFailures = 5
	)
	tests := []struct {
		name           string
		fault, recover func(p *proc)
	}{
		{"frozen and thawed", (*proc).freeze, (*proc).thaw},
		{"killed and restarted", (*proc).kill, func(p *proc) { p.start() }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := externalBroker(t)
			s := newStack(t, b, stackOptions{common: []string{"-events-ack-wait", "2s"}})
			other := twin(t, s.inventory) // orderd prices orders through s.inventory: the twin is the one that fails
			g := startGateway(t, s, gatewayOptions{
				inventories: []string{s.inventory.addr, other.addr},
				extra: "routes:\n  " + strings.TrimPrefix(getItem, "/") + ": {timeout: 500ms}\n" +
					"defaults: {rate_limit: {requests: 100000, per: 1s}}\n",
			})
			const sku, stock, orders = "SKU-FAULT", 8, 12
			s.putItem(sku, stock, 100)
			token := g.token("frank", "customer")
			read := func() (int, error) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				status, _, err := g.do(ctx, "GET", "/v1/inventory/items/"+sku, "", nil, "")
				return status, err
			}
			eventually(t, 15*time.Second, "the gateway does not call both inventory instances", func() bool {
				_, _ = read()
				return served(s.inventory, getItem) > 0 && served(other, getItem) > 0
			})
			stopWatch := readyzWatch(g)
			refs := g.placeOrders("frank", token, sku, "before", orders/2) // their events are on their way to the instances
			tt.fault(other)
			refs = append(refs, g.placeOrders("frank", token, sku, "during", orders/2)...)
			var failed []string
			began := time.Now()
			for streak := 0; streak < 20; {
				status, err := read()
				if err == nil && status == 200 {
					streak++
					continue
				}
				streak = 0
				failed = append(failed, fmt.Sprintf("%d %v", status, err))
				if err == nil && status != 504 && status != 503 {
					t.Errorf("a read while the instance is down: %d, want 200 (or 504/503 while the gateway detects it)", status)
				}
				if len(failed) > maxFailures {
					t.Fatalf("%d reads failed after the fault, want at most %d: %v", len(failed), maxFailures, failed)
				}
				if time.Since(began) > 30*time.Second {
					t.Fatalf("reads still fail 30s after the fault: %v", failed)
				}
			}
			t.Logf("after the fault: %d failed reads %v, then 20 in a row succeeded (%v)", len(failed), failed, time.Since(began).Round(time.Millisecond))

			tt.recover(other)
			began = time.Now()
			eventually(t, 60*time.Second, "the gateway does not take the instance back", func() bool {
				_, body := g.readyz()
				return strings.Contains(body, `"shop.inventory.v1.InventoryService":{"ready":2,"ejected":0,"total":2}`)
			})
			before := served(other, getItem)
			eventually(t, 10*time.Second, "the instance back serves no call through the gateway", func() bool {
				if status, err := read(); err != nil || status != 200 {
					t.Errorf("a read after the recovery: %d %v", status, err)
				}
				return served(other, getItem) > before
			})
			t.Logf("the instance serves again %v after its recovery", time.Since(began).Round(time.Millisecond))
			if bad := stopWatch(); len(bad) > 0 {
				t.Errorf("/readyz was not 200 %d times during the fault: %v", len(bad), bad)
			}
			checkOrders(t, s, sku, stock, refs)
		})
	}
}

// TestFaultKilledBetweenCommitAndPublish places orders through the gateway and kills orderd
// (SIGKILL) right after it accepted them, before its relay published their events (relay off
// on its first run), or while it publishes them (relay on: the kill races it), then restarts
// it. The client sends each order again with its Idempotency-Key, as a client that saw a
// failure would: it gets the same order back. Every order completes exactly once: one
// OrderCreated each in the stream, the stock and the payments adding up.
func TestFaultKilledBetweenCommitAndPublish(t *testing.T) {
	tests := []struct {
		name        string
		once        []string // orderd's first run
		unpublished bool     // no OrderCreated may be out before the kill
	}{
		{"relay off until the kill", []string{"-relay=false"}, true},
		{"relay racing the kill", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := externalBroker(t)
			s := newStack(t, b, stackOptions{common: []string{"-events-ack-wait", "2s"}, once: map[string][]string{"orderd": tt.once}})
			g := startGateway(t, s, gatewayOptions{})
			const sku, stock, orders = "SKU-OUTBOX", 6, 8
			s.putItem(sku, stock, 100)
			token := g.token("gina", "customer")
			refs := g.placeOrders("gina", token, sku, "outbox", orders)
			if tt.unpublished {
				if n := b.subjectCounts(t)["shop.events.v1.OrderCreated"]; n != 0 {
					t.Fatalf("orderd published %d OrderCreated with its relay off", n)
				}
			}
			s.order.kill()
			t.Logf("%d of the %d OrderCreated were in the stream when orderd was killed", b.subjectCounts(t)["shop.events.v1.OrderCreated"], orders)
			s.order.start()

			// The client sends each order again with its Idempotency-Key (retrying while orderd
			// is not back): the same orders.
			if again := g.placeOrders("gina", token, sku, "outbox", orders); !slices.Equal(again, refs) {
				t.Errorf("the orders sent again with their Idempotency-Keys are %v, want the first answers %v", again, refs)
			}
			checkOrders(t, s, sku, stock, refs)
			list, err := s.ord.ListOrders(as(ctxTimeout(t, 5*time.Second), "gina", "customer"), &orderv1.ListOrdersRequest{PageSize: 100})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.GetOrders()) != orders {
				t.Errorf("gina has %d orders, want %d", len(list.GetOrders()), orders)
			}
		})
	}
}

// TestFaultWatchFlood: one user opens 300 :watch streams on pending orders at once while
// another user reads an order. The flood is answered 200 (a stream) or 429, each at once, and
// at most 10 streams stay open for the flooding user (the per-caller stream cap, API.md); the
// other user's GetOrder calls all succeed with a median under 100 ms, and nothing answers 504.
// The route's rate limit is raised so that it is the stream cap that refuses, not the rate
// limiter. The orders stay PENDING during the flood (paymentd's relay is off on its first
// run); after it they complete, stock and payments adding up.
func TestFaultWatchFlood(t *testing.T) {
	// Without the cap, 255 of the 300 streams opened (orderd's MaxConcurrentStreams, 256, less
	// the health check's), the other 45 hung without an answer, and the other user's GetOrder
	// waited behind them on the same upstream connection until its 5s timeout: 504.
	const (
		floods     = 300
		streamCap  = 10 // the default per-caller cap of open streams (API.md)
		victimGets = 30
	)
	b := externalBroker(t)
	s := newStack(t, b, stackOptions{once: map[string][]string{"paymentd": {"-relay=false"}}})
	g := startGateway(t, s, gatewayOptions{
		extra: "routes:\n  shop.order.v1.OrderService/WatchOrder: {rate_limit: {requests: 100000, per: 1s}}\n",
	})
	const sku, stock = "SKU-FLOOD", 20
	s.putItem(sku, stock, 100)
	flooder, victim := g.token("flood", "customer"), g.token("victim", "customer")
	floodRefs := g.placeOrders("flood", flooder, sku, "flood", 5)
	victimRef := g.placeOrders("victim", victim, sku, "victim", 1)[0]
	_, victimID, _ := cut(victimRef)

	var floodIDs []string
	for _, ref := range floodRefs {
		_, id, _ := cut(ref)
		floodIDs = append(floodIDs, id)
	}

	// The flood, on connections of its own: each stream answered 200 holds its connection
	// until released.
	floodTr := &http.Transport{Proxy: nil, DisableKeepAlives: true, ResponseHeaderTimeout: 10 * time.Second}
	defer floodTr.CloseIdleConnections()
	floodCtx, release := context.WithCancel(context.Background())
	type answer struct {
		status int
		err    error
	}
	answers := make(chan answer, floods)
	var streams sync.WaitGroup
	for i := range floods {
		streams.Add(1)
		go func() {
			defer streams.Done()
			req, err := http.NewRequestWithContext(floodCtx, "GET", g.base+"/v1/orders/"+floodIDs[i%len(floodIDs)]+":watch", nil)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			req.Header.Set("Authorization", "Bearer "+flooder)
			res, err := floodTr.RoundTrip(req)
			if err != nil {
				answers <- answer{err: err}
				return
			}
			defer res.Body.Close()
			if res.StatusCode != 200 {
				_, _ = io.Copy(io.Discard, res.Body)
				answers <- answer{status: res.StatusCode}
				return
			}
			if _, err := bufio.NewReader(res.Body).ReadString('\n'); err != nil {
				answers <- answer{status: 200, err: fmt.Errorf("first line of the stream: %w", err)}
				return
			}
			answers <- answer{status: 200}
			<-floodCtx.Done() // hold the stream open
		}()
	}
	defer func() { release(); streams.Wait() }()
	counts := map[int]int{}
	var failures []string
	for range floods {
		a := <-answers
		counts[a.status]++
		if a.err != nil || (a.status != 200 && a.status != 429) {
			failures = append(failures, fmt.Sprintf("%d %v", a.status, a.err))
		}
	}
	t.Logf("the flood's %d watches were answered %v", floods, counts)

	// The victim, while the flood's streams are open.
	var took []time.Duration
	var victimFailures []string
	for range victimGets {
		ctx, cancel := context.WithTimeout(context.Background(), 6*time.Second)
		began := time.Now()
		status, body, err := g.do(ctx, "GET", "/v1/orders/"+victimID, victim, nil, "")
		cancel()
		took = append(took, time.Since(began))
		if err != nil || status != 200 {
			victimFailures = append(victimFailures, fmt.Sprintf("%d %s %v", status, body, err))
			if len(victimFailures) >= 3 {
				break
			}
		}
	}
	slices.Sort(took)
	median := took[len(took)/2]
	t.Logf("the other user's GetOrder during the flood: median %v, slowest %v", median, took[len(took)-1])

	if len(failures) > 0 {
		t.Errorf("%d of the flood's watches were answered neither 200 nor 429 at once: %v", len(failures), failures[:min(len(failures), 10)])
	}
	if counts[200] > streamCap {
		t.Errorf("%d streams opened for one user, want at most %d (the rest 429)", counts[200], streamCap)
	}
	if len(victimFailures) > 0 {
		t.Errorf("the other user's GetOrder failed during the flood: %v", victimFailures)
	}
	if median >= 100*time.Millisecond {
		t.Errorf("the other user's GetOrder took %v at the median during the flood, want under 100ms", median)
	}
	release()
	streams.Wait()
	if t.Failed() {
		return
	}

	// paymentd again, its relay on: the orders complete.
	s.payment.kill()
	s.payment.start()
	checkOrders(t, s, sku, stock, append(floodRefs, victimRef))
}

// TestFaultOrderdPricesThroughEitherInventory gives orderd both inventory instances
// (`-inventory-addr a,b`: API.md, "orderd -inventory-addr takes a comma-separated address
// list") and kills one of them: orders are still accepted, priced through the other, and all
// complete once.
func TestFaultOrderdPricesThroughEitherInventory(t *testing.T) {
	// orderd dials the flag's value as one gRPC target: "a,b" resolves to nothing, orderd still
	// reports SERVING, and every CreateOrder fails UNAVAILABLE ("inventory unavailable, try
	// again").
	b := externalBroker(t)
	s := newStack(t, b, stackOptions{common: []string{"-events-ack-wait", "2s"}})
	other := twin(t, s.inventory)
	s.order.kill()
	s.order.args = append(s.order.args, "-inventory-addr", s.inventory.addr+","+other.addr) // the last flag wins
	s.order.start()
	const sku, stock, orders = "SKU-PRICES", 6, 8
	s.putItem(sku, stock, 100)
	place := func(i int) string {
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
			var o *orderv1.Order
			ctx := metadata.AppendToOutgoingContext(as(ctxTimeout(t, 5*time.Second), "hana", "customer"), order.MDIdempotencyKey, fmt.Sprintf("prices-%d", i))
			o, err = s.ord.CreateOrder(ctx, &orderv1.CreateOrderRequest{Items: []*orderv1.OrderLine{{Sku: sku, Quantity: 1}}})
			if err == nil {
				return "hana/" + o.GetId()
			}
		}
		t.Fatalf("order %d not accepted within 10s: %v", i, err)
		return ""
	}
	var refs []string
	for i := range orders / 2 {
		refs = append(refs, place(i))
	}
	s.inventory.kill()
	for i := orders / 2; i < orders; i++ {
		refs = append(refs, place(i))
	}
	s.inventory.start()
	checkOrders(t, s, sku, stock, refs)
}
