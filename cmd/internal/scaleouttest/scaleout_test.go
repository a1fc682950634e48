package scaleouttest

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/services/events"
)

const (
	confirmed = orderv1.OrderStatus_ORDER_STATUS_CONFIRMED
	cancelled = orderv1.OrderStatus_ORDER_STATUS_CANCELLED
	pending   = orderv1.OrderStatus_ORDER_STATUS_PENDING
	captured  = paymentv1.PaymentStatus_PAYMENT_STATUS_CAPTURED
	declined  = paymentv1.PaymentStatus_PAYMENT_STATUS_DECLINED
	refunded  = paymentv1.PaymentStatus_PAYMENT_STATUS_REFUNDED
)

// backendCase is one subtest of TestScaleOut.
type backendCase struct {
	name string
	make func(t testing.TB) *backend
}

// backendCases are TestScaleOut's subtests (backends_test.go).
var backendCases = []backendCase{
	{"kafka_postgres", kafkaPostgres},
	{"nats_r3_postgres", natsR3Postgres},
}

// The load of TestScaleOut.
const (
	orderCount   = 500
	skuCount     = 4
	stockPerSKU  = 150 // 4 x 150 units for ~1000 ordered: about 40% of the orders run out of stock
	priceCents   = 250
	orderWorkers = 16
	orderRate    = 30 // orders started per second: the load lasts about 17s, past the faults
	// burstLimit is the shared limit of ListOrders per caller (and its burst) over burstPer.
	burstLimit, burstRequests = 10, 40
	burstPer                  = time.Minute
)

// orderSpec is the i-th order of the load: its customer, line, payment method and key.
type orderSpec struct {
	customer, sku, method, key string
	qty                        int32
}

func specOf(run string, i int) orderSpec {
	s := orderSpec{customer: fmt.Sprintf("cust-%d", i%25), sku: fmt.Sprintf("SKU-%d", i%skuCount), qty: int32(1 + i%3),
		method: "pm_card_ok", key: fmt.Sprintf("%s-order-%d", run, i)}
	if i%10 == 9 {
		s.method = "pm_card_declined"
	}
	return s
}

// TestScaleOut: see the package documentation.
func TestScaleOut(t *testing.T) {
	if len(backendCases) == 0 {
		t.Fatal("no backend to run on")
	}
	for _, bc := range backendCases {
		t.Run(bc.name, func(t *testing.T) {
			began := time.Now()
			scaleOut(t, bc.make(t))
			t.Logf("%s: %v in all", bc.name, time.Since(began).Round(time.Millisecond))
		})
	}
}

// gatewayYAML lifts the default limit (100 a minute per caller) out of the load's way and
// gives ListOrders the small shared limit the burst checks.
var gatewayYAML = fmt.Sprintf(`defaults:
  rate_limit: {requests: 100000, per: 1s}
routes:
  shop.order.v1.OrderService/ListOrders: {rate_limit: {requests: %d, per: %s, burst: %d}}
`, burstLimit, burstPer, burstLimit)

func scaleOut(t *testing.T, be *backend) {
	began := time.Now()
	c := newCluster(t, be, clusterOptions{replicas: 2, gateways: 2, gatewayYAML: gatewayYAML,
		// A crashed replica's unacknowledged events go to the other one after this.
		serviceFlags: []string{"-events-ack-wait", "3s"},
		// The replica never killed publishes every event twice (under two ids) while its relay
		// holds the service's outbox, as at-least-once delivery may: from the kill of the first
		// replica on at least, every consumer gets every event of that service twice, and its
		// inbox must make the second a no-op.
		lastReplicaFlags: []string{"-relay-duplicate-for-testing"}})
	t.Logf("the stack started in %v", time.Since(began).Round(time.Millisecond))

	adminToken := c.token("ops", "admin")
	for i := range skuCount {
		sku := fmt.Sprintf("SKU-%d", i)
		body := fmt.Sprintf(`{"sku":%q,"name":"Item %s","price_cents":%d,"currency":"USD","available":%d}`, sku, sku, priceCents, stockPerSKU)
		status, b, err := c.gateways[i%2].do(ctxFor(t, 10*time.Second), "PUT", "/v1/inventory/items/"+sku, adminToken, nil, body)
		if err != nil || status != http.StatusOK {
			t.Fatalf("seeding %s: %d %s %v", sku, status, b, err)
		}
	}

	// The load, with the faults in its middle.
	run := events.NewID()[:8]
	tokens := map[string]string{}
	for i := range 25 {
		cust := fmt.Sprintf("cust-%d", i)
		tokens[cust] = c.token(cust, "customer")
	}
	var accepted atomic.Int64
	loadDone := make(chan struct{})
	faults := make(chan string, 16)
	var faultsWG sync.WaitGroup
	faultsWG.Add(1)
	go func() {
		defer faultsWG.Done()
		c.faults(be, &accepted, loadDone, faults)
	}()

	loadBegan := time.Now()
	ids := make([]string, orderCount)
	attempts := make([]int, orderCount)
	errs := make([]error, orderCount)
	next := make(chan int)
	var wg sync.WaitGroup
	for range orderWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				s := specOf(run, i)
				ids[i], attempts[i], errs[i] = c.placeOrderTwice(tokens[s.customer], s, i)
				if errs[i] == nil {
					accepted.Add(1)
				}
			}
		}()
	}
	tick := time.NewTicker(time.Second / orderRate)
	for i := range orderCount {
		<-tick.C
		next <- i
	}
	tick.Stop()
	close(next)
	wg.Wait()
	loadTook := time.Since(loadBegan)
	close(loadDone)
	faultsWG.Wait()
	close(faults)
	for f := range faults {
		t.Log(f)
		if strings.HasPrefix(f, "FAILED") || strings.HasPrefix(f, "LATE") {
			t.Error(f)
		}
	}
	retried, extra := 0, 0
	for i, err := range errs {
		if err != nil {
			t.Fatalf("order %d: %v", i, err)
		}
		if once := 1 + map[bool]int{true: 1}[i%5 == 0]; attempts[i] > once {
			retried++
			extra += attempts[i] - once
		}
	}
	t.Logf("%d orders accepted through %d gateways in %v (%d of them sent twice at once); %d needed more than one attempt (%d more in all)",
		orderCount, len(c.gateways), loadTook.Round(time.Millisecond), orderCount/5, retried, extra)

	settleBegan := time.Now()
	orders := c.waitAllFinal(t, 3*time.Minute)
	t.Logf("every order final %v after the load", time.Since(settleBegan).Round(time.Millisecond))
	outboxed := c.checkOrders(t, be, run, ids, orders)
	if be.caughtUp != nil {
		settle(t, 30*time.Second, "the broker's consumers catch up", be.caughtUp)
		t.Logf("the broker: every consumer caught up, replicas as configured")
	}
	if be.published != nil {
		n, err := be.published()
		if err != nil {
			t.Fatalf("counting the broker's messages: %v", err)
		}
		t.Logf("the broker holds %d messages for the %d events of the outboxes: %d published twice, each handled once", n, outboxed, n-outboxed)
		if n <= outboxed {
			t.Errorf("the broker holds %d messages for %d events: none was delivered twice, the inboxes were not put to the test", n, outboxed)
		}
	}
	t.Logf("the invariants hold %v after the load", time.Since(settleBegan).Round(time.Millisecond))

	c.checkSharedLimit(t)
}

// placeOrder creates spec's order through the gateways as a client would: with its
// Idempotency-Key, starting at gateway i%n and moving to the next on a 5xx, a 429, a transport
// error or a timeout, with a growing pause, for up to a minute. It returns the order's id and
// how many attempts it took.
func (c *cluster) placeOrder(token string, s orderSpec, i int) (string, int, error) {
	body := fmt.Sprintf(`{"items":[{"sku":%q,"quantity":%d}],"payment_method":%q}`, s.sku, s.qty, s.method)
	deadline := time.Now().Add(time.Minute)
	var last string
	for attempt := 1; ; attempt++ {
		g := c.gateways[(i+attempt-1)%len(c.gateways)]
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		status, b, err := g.do(ctx, "POST", "/v1/orders", token, map[string]string{"Idempotency-Key": s.key}, body)
		cancel()
		if err == nil && status == http.StatusOK {
			var o struct {
				ID string `json:"id"`
			}
			if err := json.Unmarshal(b, &o); err != nil || o.ID == "" {
				return "", attempt, fmt.Errorf("order answer %q: %v", b, err)
			}
			return o.ID, attempt, nil
		}
		if err == nil && status < 500 && status != http.StatusTooManyRequests {
			return "", attempt, fmt.Errorf("POST /v1/orders: %d %s", status, b)
		}
		last = fmt.Sprintf("%d %s %v", status, b, err)
		if time.Now().After(deadline) {
			return "", attempt, fmt.Errorf("POST /v1/orders for a minute, %d attempts: last %s", attempt, last)
		}
		time.Sleep(time.Duration(min(attempt, 10)) * 100 * time.Millisecond)
	}
}

// placeOrderTwice places the order with placeOrder; every fifth one it sends twice at once
// with its one key, through both gateways, as a client that timed out and tried the other
// gateway while its first request was still on its way: both must get the same order.
func (c *cluster) placeOrderTwice(token string, s orderSpec, i int) (string, int, error) {
	if i%5 != 0 {
		return c.placeOrder(token, s, i)
	}
	var id2 string
	var n2 int
	var err2 error
	done := make(chan struct{})
	go func() {
		defer close(done)
		id2, n2, err2 = c.placeOrder(token, s, i+1)
	}()
	id, n, err := c.placeOrder(token, s, i)
	<-done
	switch {
	case err != nil:
		return "", n + n2, err
	case err2 != nil:
		return "", n + n2, fmt.Errorf("the same order sent again at once: %w", err2)
	case id != id2:
		return "", n + n2, fmt.Errorf("one Idempotency-Key sent twice at once made two orders: %s and %s", id, id2)
	}
	return id, n + n2, nil
}

// faults kills one replica of each service and starts it again, then one gateway, then stops
// one broker node and starts it again, each once the load has reached a point, and reports each step on out
// ("FAILED ..." when a step failed, "LATE ..." when the load had ended before a kill, a
// restart of a service or the stop of the broker).
func (c *cluster) faults(be *backend, accepted *atomic.Int64, loadDone <-chan struct{}, out chan<- string) {
	waitFor := func(n int64) {
		for accepted.Load() < n {
			select {
			case <-loadDone:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	during := func(what string) {
		select {
		case <-loadDone:
			out <- "LATE: " + what + " after the load had ended"
		default:
			out <- fmt.Sprintf("%s at order %d", what, accepted.Load())
		}
	}
	// One replica of each service, then the first gateway: while it is down, the clients
	// that try it get a transport error and retry through the other with the same key.
	victims := make([]*proc, 0, len(services)+1)
	for _, svc := range services {
		victims = append(victims, c.replicas[svc][0])
	}
	victims = append(victims, c.gateways[0].p)
	for n, p := range victims {
		waitFor(int64(60 + 70*n))
		during("killed " + p.name)
		p.kill()
		time.Sleep(500 * time.Millisecond) // the gateways and orderd notice it gone
		if err := p.startErr(); err != nil {
			out <- fmt.Sprintf("FAILED to restart %s: %v", p.name, err)
			return
		}
		during("restarted " + p.name)
	}
	if be.stopBroker == nil {
		out <- "the broker is the machine's: not stopped"
		return
	}
	waitFor(340)
	which, err := be.stopBroker()
	if err != nil {
		out <- fmt.Sprintf("FAILED to stop a broker node: %v", err)
		return
	}
	during("stopped " + which)
	waitFor(420)
	time.Sleep(time.Second)
	began := time.Now()
	if err := be.startBroker(); err != nil {
		out <- fmt.Sprintf("FAILED to start the broker node again: %v", err)
		return
	}
	// Only the stop must fall within the load: a restarted node may take a while to rejoin.
	out <- fmt.Sprintf("started %s again (in %v), %d orders accepted by then", which, time.Since(began).Round(time.Millisecond), accepted.Load())
}

// listAll lists every order as an admin, directly from the order service.
func (c *cluster) listAll() ([]*orderv1.Order, error) {
	var all []*orderv1.Order
	token := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		res, err := c.ord.ListOrders(admin(ctx), &orderv1.ListOrdersRequest{PageSize: 100, PageToken: token})
		cancel()
		if err != nil {
			return nil, err
		}
		all = append(all, res.GetOrders()...)
		if token = res.GetNextPageToken(); token == "" {
			return all, nil
		}
	}
}

// waitAllFinal polls the order service until no order is PENDING and returns them by id.
func (c *cluster) waitAllFinal(t *testing.T, within time.Duration) map[string]*orderv1.Order {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		all, err := c.listAll()
		left := 0
		for _, o := range all {
			if o.GetStatus() == pending {
				left++
			}
		}
		if err == nil && left == 0 {
			out := make(map[string]*orderv1.Order, len(all))
			for _, o := range all {
				out[o.GetId()] = o
			}
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v, %d of %d orders are still PENDING (%v)", within, left, len(all), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// checkOrders checks what the orders, the stock, the payments and the outboxes say once
// every order is final. It returns how many events the outboxes hold.
func (c *cluster) checkOrders(t *testing.T, be *backend, run string, ids []string, orders map[string]*orderv1.Order) int {
	t.Helper()
	// No order created twice: the store holds exactly the orders the clients were given, each
	// as its spec says, however many attempts it took.
	if len(orders) != orderCount {
		t.Errorf("the order service holds %d orders, want %d: a retry created one twice", len(orders), orderCount)
	}
	count := map[orderv1.OrderStatus]int{}
	sold := map[string]int32{}
	for i, id := range ids {
		o, s := orders[id], specOf(run, i)
		if o == nil {
			t.Errorf("order %d (%s) is not in the order service", i, id)
			continue
		}
		if o.GetCustomerId() != s.customer || len(o.GetItems()) != 1 || o.GetItems()[0].GetSku() != s.sku || o.GetItems()[0].GetQuantity() != s.qty {
			t.Errorf("order %d is %v, want %+v", i, o, s)
		}
		count[o.GetStatus()]++
		if o.GetStatus() == confirmed {
			sold[s.sku] += s.qty
			if s.method != "pm_card_ok" {
				t.Errorf("order %d was confirmed with %s", i, s.method)
			}
		}
	}
	t.Logf("orders: %d CONFIRMED, %d CANCELLED; units sold by SKU: %v", count[confirmed], count[cancelled], sold)
	if count[confirmed] == 0 || count[cancelled] == 0 {
		t.Errorf("the load should end with orders of both kinds: %v", count)
	}

	// Stock adds up exactly once the compensations (releases) have run.
	items := map[string]*inventoryv1.Item{}
	settle(t, time.Minute, "the stock settles", func() error {
		for i := range skuCount {
			sku := fmt.Sprintf("SKU-%d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			it, err := c.inv.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: sku})
			cancel()
			if err != nil {
				return err
			}
			items[sku] = it
			if it.GetReserved() != 0 || it.GetAvailable()+sold[sku] != stockPerSKU {
				return fmt.Errorf("%s: %d available + %d sold = %d, want %d; %d reserved, want 0",
					sku, it.GetAvailable(), sold[sku], it.GetAvailable()+sold[sku], stockPerSKU, it.GetReserved())
			}
		}
		return nil
	})

	// Payments: one captured payment for each confirmed order, of its total; none left
	// captured for a cancelled one; never two payments for one order.
	paymentsOf := map[string][]*paymentv1.Payment{}
	settle(t, time.Minute, "the payments settle", func() error {
		for id, o := range orders {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			res, err := c.pay.ListPayments(admin(ctx), &paymentv1.ListPaymentsRequest{OrderId: id})
			cancel()
			if err != nil {
				return err
			}
			ps := res.GetPayments()
			paymentsOf[id] = ps
			n := 0
			for _, p := range ps {
				if p.GetStatus() == captured {
					n++
				}
			}
			if want := map[bool]int{true: 1}[o.GetStatus() == confirmed]; n != want {
				return fmt.Errorf("%v order %s has %d captured payments, want %d: %v", o.GetStatus(), id, n, want, ps)
			}
		}
		return nil
	})
	byStatus := map[paymentv1.PaymentStatus]int{}
	for id, ps := range paymentsOf {
		if len(ps) > 1 {
			t.Errorf("order %s has %d payments, want at most one: %v", id, len(ps), ps)
		}
		for _, p := range ps {
			byStatus[p.GetStatus()]++
			if p.GetStatus() == captured && (p.GetAmountCents() != orders[id].GetTotalCents() || orders[id].GetPaymentId() != p.GetId()) {
				t.Errorf("order %s (total %d, payment %s) has the captured payment %v", id, orders[id].GetTotalCents(), orders[id].GetPaymentId(), p)
			}
		}
	}
	t.Logf("payments: %d captured, %d declined, %d refunded", byStatus[captured], byStatus[declined], byStatus[refunded])

	// Nothing took effect twice: each service's outbox holds each step's event at most once
	// per order (a redelivered event that slipped past the inbox would add one under a new
	// id), and the counts match the outcomes.
	outbox := map[string]map[string]int{}
	for _, svc := range services {
		db := be.store(t, svc)
		outbox[svc] = outboxCounts(t, db, svc)
	}
	want := map[string]map[string]int{
		"order":   {"OrderCreated": orderCount, "OrderConfirmed": count[confirmed], "OrderCancelled": count[cancelled]},
		"payment": {"PaymentCaptured": byStatus[captured] + byStatus[refunded], "PaymentDeclined": byStatus[declined], "PaymentRefunded": byStatus[refunded]},
	}
	for svc, types := range want {
		for typ, n := range types {
			if got := outbox[svc][typ]; got != n {
				t.Errorf("the %s outbox holds %d %s, want %d (all: %v)", svc, got, typ, n, outbox[svc])
			}
		}
	}
	inv := outbox["inventory"]
	if inv["StockReserved"]+inv["StockRejected"] > orderCount || inv["StockReserved"] < count[confirmed] {
		t.Errorf("the inventory outbox holds %v for %d orders, %d confirmed", inv, orderCount, count[confirmed])
	}
	t.Logf("outboxes: %v", outbox)
	total := 0
	for _, types := range outbox {
		for _, n := range types {
			total += n
		}
	}
	return total
}

// outboxCounts counts the events of a service's outbox by type (the name after the package),
// and fails the test for any type written twice for one order.
func outboxCounts(t *testing.T, db *sql.DB, svc string) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rows, err := db.QueryContext(ctx, `SELECT event_type, partition_key, COUNT(*) FROM outbox GROUP BY event_type, partition_key`)
	if err != nil {
		t.Fatalf("reading the %s outbox: %v", svc, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var typ, key string
		var n int
		if err := rows.Scan(&typ, &key, &n); err != nil {
			t.Fatalf("reading the %s outbox: %v", svc, err)
		}
		short := typ[strings.LastIndex(typ, ".")+1:]
		if n > 1 {
			t.Errorf("the %s outbox holds %d %s for order %s: a step took effect %d times", svc, n, short, key, n)
		}
		out[short] += n
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("reading the %s outbox: %v", svc, err)
	}
	return out
}

// checkSharedLimit sends a burst of ListOrders calls as one caller, half through each
// gateway at once: together they admit no more than the shared limit (plus what refills
// while the burst lasts), and refuse the rest with 429.
func (c *cluster) checkSharedLimit(t *testing.T) {
	t.Helper()
	token := c.token("burst-"+events.NewID()[:8], "customer")
	statuses := make([]map[int]int, len(c.gateways))
	var wg sync.WaitGroup
	began := time.Now()
	for gi, g := range c.gateways {
		statuses[gi] = map[int]int{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range burstRequests / len(c.gateways) {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				status, _, err := g.do(ctx, "GET", "/v1/orders?page_size=1", token, nil, "")
				cancel()
				if err != nil {
					status = -1
				}
				statuses[gi][status]++
			}
		}()
	}
	wg.Wait()
	took := time.Since(began)
	admitted, refused := 0, 0
	for gi, st := range statuses {
		admitted += st[http.StatusOK]
		refused += st[http.StatusTooManyRequests]
		if st[http.StatusOK]+st[http.StatusTooManyRequests] != burstRequests/len(c.gateways) {
			t.Errorf("gateway %d answered the burst %v, want only 200 and 429", gi+1, st)
		}
	}
	refill := int(took / (burstPer / burstLimit)) // what the limit regains while the burst lasts
	t.Logf("burst of %d calls in %v across %d gateways: %v; %d admitted, %d refused (limit %d per %v)",
		burstRequests, took.Round(time.Millisecond), len(c.gateways), statuses, admitted, refused, burstLimit, burstPer)
	if admitted > burstLimit+refill {
		t.Errorf("the gateways admitted %d calls of one caller, over the shared limit of %d (+%d refilled): the limit is not shared", admitted, burstLimit, refill)
	}
	if admitted < burstLimit {
		t.Errorf("the gateways admitted %d calls, fewer than the limit of %d", admitted, burstLimit)
	}
}

// settle polls check until it returns nil, failing the test with its last error after within.
func settle(t *testing.T, within time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v: %v", what, within, err)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func ctxFor(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
