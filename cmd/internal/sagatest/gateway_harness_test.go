package sagatest

// The gateway as a process of its own in front of a stack (cmd/gateway, built once), a second
// instance of a service, and the end-to-end consistency check of a set of orders: what the
// fault tests (faults_test.go) share.

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/acme/shopgate/cmd/internal/proctest"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gwpassport "github.com/acme/shopgate/gateway/passport"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/internal/devkey"
	"github.com/acme/shopgate/services/passport/passporttest"
)

var (
	gatewayBuildOnce sync.Once
	gatewayBuildErr  error
)

// gatewayBinary builds cmd/gateway into binDir once.
func gatewayBinary(t *testing.T) string {
	t.Helper()
	gatewayBuildOnce.Do(func() { gatewayBuildErr = proctest.Build(binDir, "./cmd/gateway") })
	if gatewayBuildErr != nil {
		t.Fatal(gatewayBuildErr)
	}
	return binDir
}

// gateway is cmd/gateway running in front of a stack, trusting a development key of its own.
type gateway struct {
	t    *testing.T
	p    *proc // for kill and logs; started by startGateway, not proc.start
	base string
	key  *devkey.Key
	hc   *http.Client
	tr   *http.Transport

	head    string // the file's sections startGateway writes; gatewayOptions.extra follows
	cfgPath string // the file, for a reload (SIGHUP)
}

// gatewayOptions are what a fault test changes in the gateway's file.
type gatewayOptions struct {
	inventories []string // the inventory upstream's addresses; default: the stack's one
	storefront  string   // the storefront upstream's address; default: none
	extra       string   // YAML appended to the file (routes:, defaults:, ...)
	upstreams   string   // the upstreams section's entries (indented); default: the stack's services
	server      string   // entries added to the server section ("drain_delay: 1s"); default: none
}

// trustGatewayPassports makes a passport signing key for the gateway in each of dirs and puts
// their public keys in the JWKS file the stack's services trust, beside the test key sagatest
// signs with itself (passporttest), in place of any gateway's before: a service reads the file
// again when a passport names a kid it does not know.
func trustGatewayPassports(t *testing.T, s *stack, dirs ...string) {
	t.Helper()
	type jwks struct {
		Keys []json.RawMessage `json:"keys"`
	}
	var merged jwks
	if err := json.Unmarshal(passporttest.JWKS(passporttest.Key), &merged); err != nil {
		t.Fatal(err)
	}
	for _, dir := range dirs {
		if err := gwpassport.EnsureKey(dir); err != nil {
			t.Fatal(err)
		}
		gwJWKS, err := gwpassport.JWKSOf(dir)
		if err != nil {
			t.Fatal(err)
		}
		var gw jwks
		if err := json.Unmarshal(gwJWKS, &gw); err != nil {
			t.Fatal(err)
		}
		merged.Keys = append(merged.Keys, gw.Keys...)
	}
	b, err := json.Marshal(merged)
	if err != nil {
		t.Fatal(err)
	}
	// Written aside and renamed over, as an operator deploys it: the running services re-read
	// the file, and one that read a half-written file would keep its old keys for a while.
	tmp := s.jwks + ".new"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, s.jwks); err != nil {
		t.Fatal(err)
	}
}

// startGateway writes the gateway's file (upstreams: the stack's services; auth: a development
// key of the test's own, plain subjects; the abuse detector out of the way) and runs
// cmd/gateway until /readyz answers 200. It is killed at the end of the test, its log printed
// on failure.
func startGateway(t *testing.T, s *stack, opts gatewayOptions) *gateway {
	t.Helper()
	bin := gatewayBinary(t)
	dir := t.TempDir()
	key, err := devkey.LoadOrCreate(filepath.Join(dir, "devkeys"))
	if err != nil {
		t.Fatal(err)
	}
	src := key.AuthSource()
	passportDir := filepath.Join(dir, "passport")
	trustGatewayPassports(t, s, passportDir)
	if opts.inventories == nil && opts.upstreams == "" {
		opts.inventories = []string{s.inventory.addr}
	}
	addrs := func(a ...string) string { return `["` + strings.Join(a, `", "`) + `"]` }
	g := &gateway{t: t, key: key, p: &proc{t: t, name: "gateway", bin: bin, addr: freeAddr(t), log: filepath.Join(dir, "gateway.log")}}
	ups := opts.upstreams
	if ups == "" {
		ups = fmt.Sprintf("  %s: {addresses: %s}\n  %s: {addresses: %s}\n  %s: {addresses: %s}\n",
			orderv1.OrderService_ServiceDesc.ServiceName, addrs(s.order.addr),
			paymentv1.PaymentService_ServiceDesc.ServiceName, addrs(s.payment.addr),
			inventoryv1.InventoryService_ServiceDesc.ServiceName, addrs(opts.inventories...))
		if opts.storefront != "" {
			ups += fmt.Sprintf("  %s: {addresses: %s}\n", storefrontv1.StorefrontService_ServiceDesc.ServiceName, addrs(opts.storefront))
		}
	}
	g.head = fmt.Sprintf(`listen: %s
upstreams:
%sserver: {shutdown_timeout: 2s%s}
auth:
  sources:
    - {name: %s, issuer: %q, audiences: [%q], algorithms: [EdDSA], jwks_file: %q, plain_subjects: true}
abuse: {max_failures: 10000}
passport: {key_dir: %q}
`, g.p.addr, ups, serverEntries(opts.server), src.Name, src.Issuer, src.Audiences[0], src.JWKSFile, passportDir)
	cfg := g.head + opts.extra
	cfgPath := filepath.Join(dir, "gateway.yaml")
	g.cfgPath = cfgPath
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	cmd, done, err := proctest.Start("gateway", filepath.Join(bin, "gateway"), []string{"-config", cfgPath}, g.p.log)
	if err != nil {
		t.Fatal(err)
	}
	g.p.cmd, g.p.done = cmd, done

	g.tr = &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64, ResponseHeaderTimeout: 10 * time.Second}
	g.hc = &http.Client{Transport: g.tr}
	g.base = "http://" + g.p.addr
	t.Cleanup(func() {
		g.tr.CloseIdleConnections()
		g.p.kill()
		if t.Failed() {
			t.Logf("--- gateway log (last lines):\n%s", proctest.Tail(g.p.logs(), 80))
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("the gateway exited at start:\n%s\n%s", cfg, g.p.logs())
		default:
		}
		if status, _, err := g.do(context.Background(), "GET", "/readyz", "", nil, ""); err == nil && status == 200 {
			return g
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gateway is not ready after 30s:\n%s", proctest.Tail(g.p.logs(), 40))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// token mints a token of the gateway's development key.
func (g *gateway) token(sub string, roles ...string) string {
	g.t.Helper()
	tok, err := g.key.Mint(devkey.Claims{Subject: sub, Roles: roles})
	if err != nil {
		g.t.Fatal(err)
	}
	return tok
}

// do sends one request through the gateway and reads the whole answer. It never fails the test
// (goroutines call it): an error is a transport failure or a timeout of ctx.
func (g *gateway) do(ctx context.Context, method, path, token string, hdr map[string]string, body string) (int, []byte, error) {
	return proctest.Do(ctx, g.hc, g.base, method, path, token, hdr, body)
}

// createOrder places an order of qty units of sku through the gateway (retrying, with the same
// Idempotency-Key, while the answer is a 5xx or a transport error, for up to within) and
// returns its id.
func (g *gateway) createOrder(token, sku string, qty int, key string, within time.Duration) (string, error) {
	body := fmt.Sprintf(`{"items":[{"sku":%q,"quantity":%d}]}`, sku, qty)
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		status, b, err := g.do(ctx, "POST", "/v1/orders", token, map[string]string{"Idempotency-Key": key}, body)
		cancel()
		if err == nil && status == 200 {
			var o struct {
				ID     string `json:"id"`
				Status string `json:"status"`
			}
			if err := json.Unmarshal(b, &o); err != nil || o.ID == "" {
				return "", fmt.Errorf("order answer %q: %v", b, err)
			}
			return o.ID, nil
		}
		if err == nil && status < 500 {
			return "", fmt.Errorf("POST /v1/orders: %d %s", status, b)
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("POST /v1/orders for %v: last %d %s (%v)", within, status, b, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// placeOrders places n orders of one unit of sku at once as customer (whose token it is), the
// i-th with the Idempotency-Key prefix-i, and returns their refs ("customer/id", see cut), in
// the order of i. Placed again with the same prefix, they are the same orders.
func (g *gateway) placeOrders(customer, token, sku, prefix string, n int) []string {
	g.t.Helper()
	refs := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := g.createOrder(token, sku, 1, fmt.Sprintf("%s-%d", prefix, i), 20*time.Second)
			refs[i], errs[i] = customer+"/"+id, err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			g.t.Fatalf("order %s-%d of %s: %v", prefix, i, customer, err)
		}
	}
	return refs
}

// readyz returns /readyz's status code and body.
func (g *gateway) readyz() (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	status, b, err := g.do(ctx, "GET", "/readyz", "", nil, "")
	if err != nil {
		return 0, err.Error()
	}
	return status, string(b)
}

// twin starts a second instance of p's service on the same data (database) and broker, on a
// port of its own; it is killed at the end of the test.
func twin(t *testing.T, p *proc) *proc {
	t.Helper()
	tw := &proc{t: t, name: p.name, bin: p.bin, addr: freeAddr(t), args: p.args,
		log: filepath.Join(filepath.Dir(p.log), p.name+"-twin.log")}
	t.Cleanup(func() {
		tw.kill()
		if t.Failed() {
			t.Logf("--- %s (twin) log:\n%s", tw.name, proctest.Tail(proctest.WithoutPolls(tw.logs()), 60))
		}
	})
	tw.start()
	return tw
}

// served counts the calls of method ("/pkg.Service/Method") that p's runs answered OK, from
// their logs.
func served(p *proc, method string) int {
	n := 0
	for _, l := range strings.Split(p.logs(), "\n") {
		if strings.Contains(l, `"msg":"rpc"`) && strings.Contains(l, `"method":"`+method+`"`) && strings.Contains(l, `"code":"OK"`) {
			n++
		}
	}
	return n
}

// checkOrders waits until every order in refs ("customer/id", see cut) is final and checks
// that nothing was lost or done twice: the orders, one unit of sku each, whose stock was stock
// units, end CONFIRMED while stock lasted and CANCELLED beyond it; the stock settles at what was
// sold; each order has at most one payment, captured exactly when it is confirmed; every event
// consumer has caught up; and the stream holds each order's saga events once.
func checkOrders(t *testing.T, s *stack, sku string, stock int, refs []string) {
	t.Helper()
	began := time.Now()
	defer func() {
		t.Logf("the %d orders settled, checked in %v", len(refs), time.Since(began).Round(time.Millisecond))
	}()
	count := map[orderv1.OrderStatus]int{}
	statusOf := map[string]orderv1.OrderStatus{}
	for _, ref := range refs {
		customer, id, _ := cut(ref)
		st := s.waitFinal(customer, id, 60*time.Second).GetStatus()
		count[st]++
		statusOf[id] = st
	}
	sold := min(stock, len(refs))
	if count[confirmed] != sold || count[cancelled] != len(refs)-sold {
		t.Errorf("%d orders ended %v, want %d CONFIRMED and %d CANCELLED", len(refs), count, sold, len(refs)-sold)
	}
	capturedOf := func(id string) int { return map[bool]int{true: 1, false: 0}[statusOf[id] == confirmed] }
	// Compensations (a refund) follow the final status: poll until they settle.
	eventually(t, 20*time.Second, "the stock and the payments do not settle", func() bool {
		it := s.item(sku)
		if int(it.GetAvailable()) != stock-sold || it.GetReserved() != 0 {
			return false
		}
		for id := range statusOf {
			if s.paymentStatuses(id)[captured] != capturedOf(id) {
				return false
			}
		}
		return true
	})
	for id, st := range statusOf {
		if ps := s.payments(id); len(ps) > 1 {
			t.Errorf("order %s (%v) has %d payments, want at most one: %v", id, st, len(ps), ps)
		}
	}
	for _, svc := range []string{"inventory", "payment", "order"} {
		eventually(t, 20*time.Second, "the "+svc+" consumers have events left", func() bool {
			infos := serviceConsumers(t, s.broker, svc)
			for _, info := range infos {
				if info.NumPending != 0 || info.NumAckPending != 0 {
					return false
				}
			}
			return len(infos) > 0
		})
	}
	const ev = "shop.events.v1."
	counts := s.broker.subjectCounts(t)
	for typ, n := range map[string]int{ev + "OrderCreated": len(refs), ev + "OrderConfirmed": sold, ev + "OrderCancelled": len(refs) - sold} {
		if counts[typ] != n {
			t.Errorf("the stream holds %d %s, want %d (all: %v)", counts[typ], typ, n, counts)
		}
	}
	for subj := range counts {
		if strings.HasPrefix(subj, "deadletter.") {
			t.Errorf("an event was dead-lettered: %s (all: %v)", subj, counts)
		}
	}
}
