package scaleouttest

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"github.com/acme/shopgate/cmd/internal/proctest"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/devkey"
)

// sagaClients is how many clients place orders at once in BenchmarkSaga, each one order at
// a time: place it, follow it until it is final, place the next. The default, 64, is where
// the embedded stack confirmed the most orders per second on a 2-core machine (16 clients:
// about half as many; 128 and 256: fewer again, the machine saturated).
var sagaClients = flag.Int("saga.clients", 64, "BenchmarkSaga: clients placing orders at once")

// benchStack is what BenchmarkSaga drives: gateways and a key they trust.
type benchStack struct {
	gateways []*gateway
	key      *devkey.Key
}

// benchCase is one sub-benchmark of BenchmarkSaga: a stack started once for all its rounds.
type benchCase struct {
	name  string
	start func(t testing.TB) *benchStack
}

// benchCases are BenchmarkSaga's sub-benchmarks, side by side in one run.
var benchCases = []benchCase{
	{"embedded", embeddedStack},
	{"binaries_sqlite_nats", func(t testing.TB) *benchStack { return clusterStack(t, localBackend(t)) }},
	{"postgres_kafka", func(t testing.TB) *benchStack { return clusterStack(t, kafkaPostgres(t)) }},
	{"postgres_nats_r3", func(t testing.TB) *benchStack { return clusterStack(t, natsR3Postgres(t)) }},
}

// embeddedStack is cmd/shop as `make run` starts it (one process: gateway, services, embedded
// NATS, SQLite), with two changes of its gateway's file: the default rate limit (100 calls a
// minute per caller) lifted out of the way, and logging at warn (the access log of every call
// would be most of the work).
func embeddedStack(t testing.TB) *benchStack {
	t.Helper()
	bin := binaries(t)
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	key, err := devkey.LoadOrCreate(filepath.Join(data, "devkeys")) // shop trusts the key it finds there
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "gateway.yaml")
	if err := os.WriteFile(cfg, []byte("defaults:\n  rate_limit: {requests: 100000, per: 1s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := proctest.FreeAddr(t)
	g := newGateway(t, filepath.Join(bin, "shop"), addr, "shop", filepath.Join(dir, "shop.log"),
		"-data", data, "-listen", addr, "-config", cfg, "-log-level", "warn")
	t.Cleanup(func() {
		g.close()
		if t.Failed() {
			t.Logf("--- shop log:\n%s", proctest.Tail(g.p.logs(), 60))
		}
	})
	g.p.start()
	return &benchStack{gateways: []*gateway{g}, key: key}
}

// clusterStack is the binaries on be: one replica of each service and one gateway.
func clusterStack(t testing.TB, be *backend) *benchStack {
	t.Helper()
	c := newCluster(t, be, clusterOptions{replicas: 1, gateways: 1, gatewayYAML: "defaults:\n  rate_limit: {requests: 100000, per: 1s}\n"})
	return &benchStack{gateways: c.gateways, key: c.key}
}

// BenchmarkSaga measures confirmed orders per second end to end through the gateway:
// -saga.clients clients (default 64) each place an order (POST /v1/orders) and follow it (GET
// /v1/orders/{id}:watch) until it is CONFIRMED, then place the next; an op is one order, and
// orders/s is b.N over the time all of them took. Each sub-benchmark starts its stack once;
// run it with -benchtime Nx (make bench-saga) so that every stack confirms the same N orders.
// At the end it prints the sub-benchmarks side by side, as medians over the runs so far
// (-count), with their ratio to the first.
func BenchmarkSaga(b *testing.B) {
	for _, bc := range benchCases {
		var st *benchStack
		b.Run(bc.name, func(sub *testing.B) {
			if st == nil {
				st = bc.start(b) // for every round: stopped when BenchmarkSaga ends
				st.seed(sub)
			}
			if rate := st.run(sub); sub.N > 1 {
				sagaRuns[bc.name] = append(sagaRuns[bc.name], rate)
			}
		})
	}
	printSagaTable(os.Stdout)
}

// sagaRuns are the orders/s of each sub-benchmark's runs, by name.
var sagaRuns = map[string][]float64{}

// printSagaTable writes the median orders/s of each sub-benchmark and its ratio to the first.
func printSagaTable(w io.Writer) {
	var first float64
	fmt.Fprintf(w, "\nconfirmed orders per second, end to end through the gateway (%d clients):\n", *sagaClients)
	fmt.Fprintf(w, "  %-22s %10s %8s %s\n", "stack", "orders/s", "ratio", "runs")
	for _, bc := range benchCases {
		runs := sagaRuns[bc.name]
		if len(runs) == 0 {
			continue
		}
		sorted := slices.Clone(runs)
		slices.Sort(sorted)
		median := sorted[len(sorted)/2]
		if len(sorted)%2 == 0 {
			median = (sorted[len(sorted)/2-1] + sorted[len(sorted)/2]) / 2
		}
		if first == 0 {
			first = median
		}
		fmt.Fprintf(w, "  %-22s %10.1f %7.2fx %.1f\n", bc.name, median, median/first, runs)
	}
	fmt.Fprintln(w)
}

const benchSKU = "SKU-BENCH"

// seed creates the item the orders buy, with stock for any run.
func (st *benchStack) seed(b *testing.B) {
	tok, err := st.key.Mint(devkey.Claims{Subject: "ops", Roles: []string{"admin"}, TTL: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	body := fmt.Sprintf(`{"sku":%q,"name":"Bench item","price_cents":100,"currency":"USD","available":1000000000}`, benchSKU)
	status, res, err := st.gateways[0].do(ctxFor(b, 10*time.Second), "PUT", "/v1/inventory/items/"+benchSKU, tok, nil, body)
	if err != nil || status != http.StatusOK {
		b.Fatalf("seeding: %d %s %v", status, res, err)
	}
}

// run places b.N orders and returns how many were confirmed per second.
func (st *benchStack) run(b *testing.B) float64 {
	tokens := make([]string, *sagaClients)
	for i := range tokens {
		tok, err := st.key.Mint(devkey.Claims{Subject: fmt.Sprintf("bench-%d", i), Roles: []string{"customer"}, TTL: time.Hour})
		if err != nil {
			b.Fatal(err)
		}
		tokens[i] = tok
	}
	var next, ok atomic.Int64
	var firstErr atomic.Value
	var wg sync.WaitGroup
	b.ResetTimer()
	began := time.Now()
	for w := range *sagaClients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := st.gateways[w%len(st.gateways)]
			for next.Add(1) <= int64(b.N) {
				if err := order(g, tokens[w]); err != nil {
					firstErr.CompareAndSwap(nil, err)
					continue
				}
				ok.Add(1)
			}
		}()
	}
	wg.Wait()
	took := time.Since(began)
	b.StopTimer()
	if err, _ := firstErr.Load().(error); err != nil {
		b.Fatalf("%d of %d orders not confirmed; first: %v", int64(b.N)-ok.Load(), b.N, err)
	}
	rate := float64(b.N) / took.Seconds()
	b.ReportMetric(rate, "orders/s")
	return rate
}

// order places one order through g and follows it until it is final: an error unless it is
// CONFIRMED.
func order(g *gateway, token string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	status, body, err := g.do(ctx, "POST", "/v1/orders", token, nil, fmt.Sprintf(`{"items":[{"sku":%q,"quantity":1}]}`, benchSKU))
	if err != nil || status != http.StatusOK {
		return fmt.Errorf("POST /v1/orders: %d %s %v", status, body, err)
	}
	var o struct {
		ID     string `json:"id"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &o); err != nil {
		return fmt.Errorf("order answer %q: %w", body, err)
	}
	req, err := http.NewRequestWithContext(ctx, "GET", g.base+"/v1/orders/"+o.ID+":watch", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := g.hc.Do(req)
	if err != nil {
		return fmt.Errorf("watching %s: %w", o.ID, err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("watching %s: %s", o.ID, res.Status)
	}
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		var msg struct {
			Result *struct {
				Status string `json:"status"`
			} `json:"result"`
			Error json.RawMessage `json:"error"`
		}
		if err := json.Unmarshal(sc.Bytes(), &msg); err != nil {
			return fmt.Errorf("watching %s: %q: %w", o.ID, sc.Bytes(), err)
		}
		if msg.Result == nil {
			return fmt.Errorf("watching %s: %s", o.ID, sc.Bytes())
		}
		switch msg.Result.Status {
		case "ORDER_STATUS_CONFIRMED":
			return nil
		case "ORDER_STATUS_CANCELLED":
			return fmt.Errorf("order %s was cancelled", o.ID)
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("watching %s: %w", o.ID, err)
	}
	return fmt.Errorf("watching %s: the stream ended before the order was final", o.ID)
}
