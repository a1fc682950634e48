package sagatest

import (
	"bufio"
	"context"
	"fmt"
	"github.com/acme/shopgate/cmd/internal/proctest"
	"net/http"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/nats-io/nats.go/jetstream"
)

// TestInstancesShareTheWorkAndSurviveACrash runs two instances of paymentd and of inventoryd
// (same database, one durable consumer per service), each with its own metrics endpoint,
// places orders concurrently and kills one payment instance mid-flow, once its metrics show it
// has handled events: its unacknowledged events go to the other after the ack wait, and every
// order ends with the stock and payments adding up. Each instance's
// events_consumer_messages_total shows it handled part of the work; the stream's events and
// the durable consumers' state show that nothing took effect twice and nothing was lost.
func TestInstancesShareTheWorkAndSurviveACrash(t *testing.T) {
	const ackWait = "2s"
	b := externalBroker(t)
	metricsOf := map[string]string{"paymentd": freeAddr(t), "inventoryd": freeAddr(t)}
	s := newStack(t, b, stackOptions{common: []string{"-events-ack-wait", ackWait}, once: map[string][]string{
		"paymentd":   {"-metrics-listen", metricsOf["paymentd"]},
		"inventoryd": {"-metrics-listen", metricsOf["inventoryd"]},
	}})
	second := func(p *proc) (*proc, string) {
		metrics := freeAddr(t)
		twin := &proc{t: t, name: p.name, bin: p.bin, addr: freeAddr(t), args: p.args,
			log: filepath.Join(filepath.Dir(p.log), p.name+"-2.log")}
		t.Cleanup(func() {
			twin.kill()
			if t.Failed() {
				t.Logf("--- %s (second instance) log:\n%s", twin.name, proctest.Tail(twin.logs(), 60))
			}
		})
		twin.start("-metrics-listen", metrics)
		return twin, metrics
	}
	payment2, payment2Metrics := second(s.payment)
	_, inventory2Metrics := second(s.inventory)
	payment1Metrics, inventory1Metrics := metricsOf["paymentd"], metricsOf["inventoryd"]

	const sku, stock, orders = "SKU-TWINS", 15, 40
	s.putItem(sku, stock, 100)
	ids := make([]string, orders)
	var wg sync.WaitGroup
	errs := make(chan error, orders)
	for i := range orders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			o, err := s.ord.CreateOrder(as(ctx, "erin", "customer"), &orderv1.CreateOrderRequest{
				Items: []*orderv1.OrderLine{{Sku: sku, Quantity: 1}},
			})
			if err != nil {
				errs <- fmt.Errorf("order %d: %w", i, err)
				return
			}
			ids[i] = o.GetId()
		}()
	}

	// A crash in the middle of the flow, as soon as the second payment instance has handled an
	// event: what it counted until then is the last it can tell.
	paymentOK := map[string]string{"consumer": "payment", "result": "ok"}
	var payment2Handled float64
	var waitErr error
	deadline := time.Now().Add(30 * time.Second)
	for {
		v, err := scrapeCounter(payment2Metrics, "events_consumer_messages_total", paymentOK)
		if err == nil && v >= 1 {
			payment2Handled = v
			break
		}
		if time.Now().After(deadline) {
			waitErr = fmt.Errorf("the second payment instance handled no event in 30s (last scrape: %v, %v)", v, err)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if waitErr == nil {
		var pending, unacked uint64
		for _, info := range serviceConsumers(t, b, "payment") {
			pending, unacked = pending+info.NumPending, unacked+uint64(info.NumAckPending)
		}
		payment2.kill()
		t.Logf("killed the second payment instance after it handled %v events; the payment consumers had %d pending and %d unacknowledged",
			payment2Handled, pending, unacked)
	}
	wg.Wait()
	close(errs)
	if waitErr != nil {
		t.Fatal(waitErr)
	}
	for err := range errs {
		t.Fatal(err)
	}

	count := map[orderv1.OrderStatus]int{}
	statusOf := map[string]orderv1.OrderStatus{}
	for _, id := range ids {
		st := s.waitFinal("erin", id, 60*time.Second).GetStatus()
		count[st]++
		statusOf[id] = st
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

	// Nothing lost: every durable consumer of every service has had every event it filters
	// delivered and acknowledged.
	for _, svc := range []string{"inventory", "payment", "order"} {
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			infos := serviceConsumers(t, b, svc)
			left := ""
			for _, info := range infos {
				if info.NumPending != 0 || info.NumAckPending != 0 {
					left += fmt.Sprintf(" %s: %d pending, %d unacknowledged (%d redelivered; delivered %+v, ack floor %+v);",
						info.Name, info.NumPending, info.NumAckPending, info.NumRedelivered, info.Delivered, info.AckFloor)
				}
			}
			if len(infos) > 0 && left == "" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("after 20s the %s service's consumers (%d) have events left:%s", svc, len(infos), left)
			}
		}
	}

	// Nothing twice in effect: one payment at most per order, captured and kept only when
	// confirmed, and every saga step's event once per order (a step taken twice would add an
	// event under a new id, which the stream's deduplication would not hide).
	var payments, refunds int
	for _, id := range ids {
		ps := s.payments(id)
		if len(ps) > 1 {
			t.Errorf("order %s has %d payments, want at most 1: %v", id, len(ps), ps)
		}
		st := map[paymentv1.PaymentStatus]int{}
		for _, p := range ps {
			st[p.GetStatus()]++
		}
		payments += len(ps)
		refunds += st[refunded]
		if statusOf[id] == confirmed && st[captured] != 1 {
			t.Errorf("confirmed order %s has payments %v, want one captured", id, st)
		}
		if statusOf[id] == cancelled && st[captured] != 0 {
			t.Errorf("cancelled order %s has payments %v, want none left captured", id, st)
		}
	}
	const ev = "shop.events.v1."
	want := map[string]int{
		ev + "OrderCreated": orders, ev + "StockReserved": stock, ev + "StockRejected": orders - stock,
		ev + "PaymentCaptured": payments, ev + "PaymentDeclined": 0, ev + "PaymentRefunded": refunds,
		ev + "OrderConfirmed": stock, ev + "OrderCancelled": orders - stock, ev + "StockReleased": 0,
	}
	var counts map[string]int
	// The last outcome events (a refund nobody waits for) may still be on their way from an outbox.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		counts = b.subjectCounts(t)
		same := true
		for typ, n := range want {
			same = same && counts[typ] == n
		}
		if same || time.Now().After(deadline) {
			break
		}
	}
	for typ, n := range want {
		if counts[typ] != n {
			t.Errorf("stream holds %d %s, want %d (all: %v)", counts[typ], typ, n, counts)
		}
	}
	for subj := range counts {
		if strings.HasPrefix(subj, "deadletter.") {
			t.Errorf("an event was dead-lettered: %s (all: %v)", subj, counts)
		}
	}

	// Shared work: each instance's own metrics show it handled events of its service's consumer.
	inventoryOK := map[string]string{"consumer": "inventory", "result": "ok"}
	inventoryMsgs := counts[ev+"OrderCreated"] + counts[ev+"OrderConfirmed"] + counts[ev+"OrderCancelled"]
	handled := map[string]float64{"paymentd-2 (until killed)": payment2Handled}
	for _, m := range []struct {
		name, addr string
		ok         map[string]string
	}{
		{"paymentd-1", payment1Metrics, paymentOK},
		{"inventoryd-1", inventory1Metrics, inventoryOK},
		{"inventoryd-2", inventory2Metrics, inventoryOK},
	} {
		v, err := scrapeCounter(m.addr, "events_consumer_messages_total", m.ok)
		if err != nil {
			t.Fatalf("%s metrics: %v", m.name, err)
		}
		handled[m.name] = v
		dl, err := scrapeCounter(m.addr, "events_consumer_messages_total", map[string]string{"consumer": m.ok["consumer"], "result": "dead_letter"})
		if err != nil {
			t.Fatalf("%s metrics: %v", m.name, err)
		}
		if dl != 0 {
			t.Errorf("%s dead-lettered %v events", m.name, dl)
		}
	}
	t.Logf("events handled per instance: %v (inventory consumer: %d events)", handled, inventoryMsgs)
	for name, v := range handled {
		if v < 1 {
			t.Errorf("%s handled no event (per instance: %v)", name, handled)
		}
	}
	// Neither inventory instance stopped: between them they handled every inventory event
	// (more only if one was redelivered after the ack wait, which the inbox makes harmless).
	if got := handled["inventoryd-1"] + handled["inventoryd-2"]; got < float64(inventoryMsgs) {
		t.Errorf("the inventory instances handled %v events, want at least the %d the consumer filters", got, inventoryMsgs)
	}
}

// serviceConsumers reads the durable consumers through which a service receives its events:
// the one named after it filtering on all its subjects or, on a server older than 2.10, one per
// event type (svc_<Type>; see events.JetStream.Subscribe), and any unfiltered one left under
// the service's names, which must not exist.
func serviceConsumers(t *testing.T, b *broker, svc string) []*jetstream.ConsumerInfo {
	t.Helper()
	stream := b.cfg.Stream
	if stream == "" {
		stream = "SHOP_EVENTS"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := b.js.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	var out []*jetstream.ConsumerInfo
	list := st.ListConsumers(ctx)
	for info := range list.Info() {
		// Unfiltered ones too: a server older than 2.10 ignores FilterSubjects, and an unfiltered
		// durable left behind by the fallback would hold the whole stream pending.
		if info.Name == svc || strings.HasPrefix(info.Name, svc+"_") {
			out = append(out, info)
		}
	}
	if err := list.Err(); err != nil {
		t.Fatalf("listing the consumers of %s: %v", stream, err)
	}
	return out
}

// scrapeCounter reads the series name{labels} (exactly these labels) from the Prometheus text
// exposition at http://addr/metrics: 0 when the series is absent.
func scrapeCounter(addr, name string, labels map[string]string) (float64, error) {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	req.Close = true // no idle connection left behind for goleak
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET /metrics: %s", res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		series, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		metric, rest, _ := strings.Cut(series, "{")
		if metric != name {
			continue
		}
		got := map[string]string{}
		for _, pair := range strings.Split(strings.TrimSuffix(rest, "}"), ",") {
			if k, v, ok := strings.Cut(pair, "="); ok {
				got[k] = strings.Trim(v, `"`)
			}
		}
		if len(got) != len(keys) {
			continue
		}
		match := true
		for _, k := range keys {
			if got[k] != labels[k] {
				match = false
				break
			}
		}
		if match {
			return strconv.ParseFloat(strings.TrimSpace(value), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, nil
}
