package main

// Tests of the order saga through the real single-process stack: real HTTP through the
// gateway, real gRPC services, the embedded JetStream broker and the SQLite stores. One stack
// per test function.
//
// Some tests need an order to stay PENDING for a while, which the saga does not do on its own
// (it completes in milliseconds). They hold the payment service's SQLite write lock from the
// outside (BEGIN IMMEDIATE on <data>/payment/payment.db), as a slow database would: the
// payment handler of OrderCreated waits on its busy timeout (storage.DefaultBusyTimeout, 5s)
// and proceeds as soon as the lock is released, so the order is pending exactly as long as the
// test wants (well under 5s, so no handler attempt fails).
//
// Where an effect is asynchronous after the order's final status (the reservation released,
// the payment refunded), the tests wait, bounded, on the consumers' counters in /metrics
// (events_consumer_messages_total{consumer, result="ok"}): inventory handles two events per
// order (OrderCreated, then OrderConfirmed or OrderCancelled), payment one per confirmed order
// (OrderCreated) and two per cancelled one (OrderCreated, OrderCancelled).

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/devkey"
	_ "modernc.org/sqlite" // the stores' driver, to hold a store's lock from the outside
)

// sagaOrder is an Order as the gateway writes it.
type sagaOrder struct {
	ID           string `json:"id"`
	CustomerID   string `json:"customerId"`
	Status       string `json:"status"`
	StatusReason string `json:"statusReason"`
	PaymentID    string `json:"paymentId"`
	TotalCents   string `json:"totalCents"`
	Currency     string `json:"currency"`
	CreateTime   string `json:"createTime"`
	UpdateTime   string `json:"updateTime"`
	Items        []struct {
		Sku            string `json:"sku"`
		Quantity       int    `json:"quantity"`
		UnitPriceCents string `json:"unitPriceCents"`
	} `json:"items"`
}

// sagaPayment is a Payment as the gateway writes it.
type sagaPayment struct {
	ID            string `json:"id"`
	OrderID       string `json:"orderId"`
	CustomerID    string `json:"customerId"`
	AmountCents   string `json:"amountCents"`
	Currency      string `json:"currency"`
	Status        string `json:"status"`
	DeclineReason string `json:"declineReason"`
	UpdateTime    string `json:"updateTime"`
}

// sagaStatus is a google.rpc.Status body.
type sagaStatus struct {
	Code    int              `json:"code"`
	Message string           `json:"message"`
	Details []map[string]any `json:"details"`
}

const (
	statusPending   = "ORDER_STATUS_PENDING"
	statusConfirmed = "ORDER_STATUS_CONFIRMED"
	statusCancelled = "ORDER_STATUS_CANCELLED"

	paymentCaptured = "PAYMENT_STATUS_CAPTURED"
	paymentDeclined = "PAYMENT_STATUS_DECLINED"
	paymentRefunded = "PAYMENT_STATUS_REFUNDED"
)

// sagaStack is one stack for one test, with its development key and an HTTP client of its own
// for the watch streams.
type sagaStack struct {
	*stack
	t     *testing.T
	data  string
	key   *devkey.Key
	watch *http.Client
}

func startSaga(t *testing.T) *sagaStack {
	t.Helper()
	data := t.TempDir()
	st := startStack(t, data)
	t.Cleanup(func() { st.stop(t) })
	key, err := devkey.LoadOrCreate(filepath.Join(data, "devkeys"))
	if err != nil {
		t.Fatal(err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections) // runs before the stack stops
	return &sagaStack{stack: st, t: t, data: data, key: key, watch: &http.Client{Transport: tr}}
}

func (s *sagaStack) token(sub string, roles ...string) string {
	s.t.Helper()
	tok, err := s.key.Mint(devkey.Claims{Subject: sub, Roles: roles})
	if err != nil {
		s.t.Fatal(err)
	}
	return tok
}

// do sends one request and returns the status, the headers and the whole body.
func (s *sagaStack) do(method, path, token, body string, hdr map[string]string) (int, http.Header, []byte) {
	s.t.Helper()
	req, err := http.NewRequest(method, s.base+path, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		s.t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	return resp.StatusCode, resp.Header, b
}

func sagaDecode(t *testing.T, what string, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %q: %v", what, b, err)
	}
}

// create posts a new order and wants 200 PENDING.
func (s *sagaStack) create(token, body string, hdr map[string]string) sagaOrder {
	s.t.Helper()
	o := s.post(token, body, hdr)
	if o.Status != statusPending {
		s.t.Fatalf("create %s: %+v, want a PENDING order", body, o)
	}
	return o
}

// post posts an order and wants 200 with an order, in whatever state (a replayed
// Idempotency-Key answers with the order as it stands).
func (s *sagaStack) post(token, body string, hdr map[string]string) sagaOrder {
	s.t.Helper()
	code, _, b := s.do("POST", "/v1/orders", token, body, hdr)
	if code != 200 {
		s.t.Fatalf("post order %s: %d %s", body, code, b)
	}
	var o sagaOrder
	sagaDecode(s.t, "post order", b, &o)
	if o.ID == "" {
		s.t.Fatalf("post order %s: %s, no order", body, b)
	}
	return o
}

func (s *sagaStack) get(id, token string) sagaOrder {
	s.t.Helper()
	code, _, b := s.do("GET", "/v1/orders/"+id, token, "", nil)
	if code != 200 {
		s.t.Fatalf("get order %s: %d %s", id, code, b)
	}
	var o sagaOrder
	sagaDecode(s.t, "get order", b, &o)
	return o
}

func (s *sagaStack) item(sku string) item {
	s.t.Helper()
	var it item
	if code := s.call(s.t, "GET", "/v1/inventory/items/"+sku, "", "", &it); code != 200 {
		s.t.Fatalf("item %s: %d", sku, code)
	}
	return it
}

func (s *sagaStack) payments(orderID, token string) []sagaPayment {
	s.t.Helper()
	code, _, b := s.do("GET", "/v1/payments?order_id="+orderID, token, "", nil)
	if code != 200 {
		s.t.Fatalf("payments of %s: %d %s", orderID, code, b)
	}
	var list struct {
		Payments []sagaPayment `json:"payments"`
	}
	sagaDecode(s.t, "payments", b, &list)
	return list.Payments
}

// sagaWatch is one open GET /v1/orders/{id}:watch, read line by line.
type sagaWatch struct {
	resp   *http.Response
	r      *bufio.Reader
	cancel context.CancelFunc
}

// openWatch opens a watch bounded by limit. On an answer other than 200 it returns nil with the
// status and body.
func (s *sagaStack) openWatch(id, token string, limit time.Duration) (*sagaWatch, int, []byte) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/v1/orders/"+id+":watch", nil)
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.watch.Do(req)
	if err != nil {
		cancel()
		s.t.Fatalf("watch %s: %v", id, err)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		s.t.Errorf("watch %s: no X-Request-Id", id)
	}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		return nil, resp.StatusCode, b
	}
	return &sagaWatch{resp: resp, r: bufio.NewReader(resp.Body), cancel: cancel}, 200, nil
}

// next returns the next order of the stream; io.EOF when the server ended it; another error for
// an {"error": ...} line, a malformed line or the watch's time limit.
func (w *sagaWatch) next() (sagaOrder, error) {
	for {
		line, err := w.r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) == 0 {
			if err != nil {
				return sagaOrder{}, err
			}
			continue // tolerate blank lines
		}
		var msg struct {
			Result *sagaOrder       `json:"result"`
			Error  *json.RawMessage `json:"error"`
		}
		if derr := json.Unmarshal(line, &msg); derr != nil {
			return sagaOrder{}, fmt.Errorf("line %q: %v", line, derr)
		}
		if msg.Error != nil {
			return sagaOrder{}, fmt.Errorf("stream error %s", *msg.Error)
		}
		if msg.Result == nil {
			return sagaOrder{}, fmt.Errorf("line %q has no result", line)
		}
		return *msg.Result, nil
	}
}

// rest reads the stream to its end; the error is nil only when the server ended it (EOF).
func (w *sagaWatch) rest() ([]sagaOrder, error) {
	var out []sagaOrder
	for {
		o, err := w.next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, o)
	}
}

func (w *sagaWatch) close() {
	w.cancel()
	_ = w.resp.Body.Close()
}

// watchToEnd watches an order until the server ends the stream (20s at most) and checks the
// stream's shape: every line is the order, PENDING lines then one final line, the last.
func (s *sagaStack) watchToEnd(id, token string) []sagaOrder {
	s.t.Helper()
	w, code, b := s.openWatch(id, token, 20*time.Second)
	if w == nil {
		s.t.Fatalf("watch %s: %d %s", id, code, b)
	}
	defer w.close()
	lines, err := w.rest()
	if err != nil {
		s.t.Fatalf("watch %s did not end by itself within 20s: %v (lines so far %+v)", id, err, lines)
	}
	sagaCheckStream(s.t, id, lines)
	return lines
}

// sagaCheckStream: at least one line, every line the order, only the last one final, no line
// repeated (the service sends changes only).
func sagaCheckStream(t *testing.T, id string, lines []sagaOrder) {
	t.Helper()
	if len(lines) == 0 {
		t.Fatalf("watch %s: no line before the end", id)
	}
	for i, o := range lines {
		if o.ID != id {
			t.Fatalf("watch %s: line %d is order %q", id, i, o.ID)
		}
		final := o.Status == statusConfirmed || o.Status == statusCancelled
		switch last := i == len(lines)-1; {
		case last && !final:
			t.Fatalf("watch %s ended on %s: %+v", id, o.Status, lines)
		case !last && o.Status != statusPending:
			t.Fatalf("watch %s: line %d is %s, not the last: %+v", id, i, o.Status, lines)
		}
		if i > 0 && fmt.Sprint(o) == fmt.Sprint(lines[i-1]) {
			t.Errorf("watch %s: line %d repeats the previous one: %+v", id, i, o)
		}
	}
}

func sagaStatuses(lines []sagaOrder) []string {
	out := make([]string, len(lines))
	for i, o := range lines {
		out[i] = o.Status
	}
	return out
}

// metric sums the samples of the metric name whose labels include every `k="v"` given.
func (s *sagaStack) metric(name string, labels ...string) float64 {
	s.t.Helper()
	resp, err := http.Get(s.base + "/metrics")
	if err != nil {
		s.t.Fatalf("metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		s.t.Fatalf("metrics: %d %v", resp.StatusCode, err)
	}
	sum := 0.0
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" || line[0] == '#' {
			continue
		}
		sp := strings.LastIndexByte(line, ' ')
		if sp < 0 {
			continue
		}
		series, value := line[:sp], line[sp+1:]
		if series != name && !strings.HasPrefix(series, name+"{") {
			continue
		}
		match := true
		for _, l := range labels {
			if !strings.Contains(series, l) {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			s.t.Fatalf("metrics: %q: %v", line, err)
		}
		sum += v
	}
	return sum
}

func (s *sagaStack) handled(consumer string) float64 {
	return s.metric("events_consumer_messages_total", `consumer="`+consumer+`"`, `result="ok"`)
}

// sagaEventually polls cond, at growing intervals, until it holds or timeout passes.
func sagaEventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := 5 * time.Millisecond
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, state)
		}
		time.Sleep(wait)
		if wait < 200*time.Millisecond {
			wait *= 2
		}
	}
}

// settle waits until inventory and payment have handled at least inv and pay events in all.
func (s *sagaStack) settle(inv, pay float64) {
	s.t.Helper()
	sagaEventually(s.t, 20*time.Second, "events handled", func() (bool, string) {
		gi, gp := s.handled("inventory"), s.handled("payment")
		return gi >= inv && gp >= pay, fmt.Sprintf("inventory %v/%v, payment %v/%v", gi, inv, gp, pay)
	})
}

// noDeadLetters: no event of the test ended in a dead-letter subject.
func (s *sagaStack) noDeadLetters() {
	s.t.Helper()
	if n := s.metric("events_dead_letter_total"); n != 0 {
		s.t.Errorf("%v events dead-lettered\n%s", n, s.stderr.String())
	}
}

// lockPayments holds the payment store's write lock until the returned function is called (at
// the latest at the end of the test, before the stack stops).
func (s *sagaStack) lockPayments() (release func()) {
	s.t.Helper()
	path := filepath.Join(s.data, "payment", "payment.db")
	if _, err := os.Stat(path); err != nil {
		s.t.Fatalf("payment store: %v", err)
	}
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(5000)")
	if err != nil {
		s.t.Fatal(err)
	}
	ctx := context.Background()
	conn, err := db.Conn(ctx)
	if err != nil {
		db.Close()
		s.t.Fatal(err)
	}
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		conn.Close()
		db.Close()
		s.t.Fatalf("locking the payment store: %v", err)
	}
	var once sync.Once
	release = func() {
		once.Do(func() {
			if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
				s.t.Errorf("unlocking the payment store: %v", err)
			}
			conn.Close()
			db.Close()
		})
	}
	s.t.Cleanup(release)
	return release
}

// TestSagaWatch: GET /v1/orders/{id}:watch streams the order as newline-delimited
// {"result": Order} lines, the current state first, then each change, and ends by itself at
// the final status.
func TestSagaWatch(t *testing.T) {
	s := startSaga(t)
	alice := s.token("watch-alice", "customer")

	// 1. Created and watched at once. The saga may finish before the watch starts: WatchOrder
	// always sends the order as it stands first (watch.go: `last == nil`), so the stream is then
	// the one final line. Otherwise PENDING comes first. Either way CONFIRMED is last.
	o := s.create(alice, `{"items":[{"sku":"sku-apple","quantity":1}]}`, nil)
	lines := s.watchToEnd(o.ID, alice)
	if last := lines[len(lines)-1]; last.Status != statusConfirmed || last.PaymentID == "" {
		t.Fatalf("watch ended on %+v, want CONFIRMED with a payment", last)
	}
	if lines[0].Status == statusPending {
		t.Logf("race watch: PENDING first: %v", sagaStatuses(lines))
	} else {
		t.Logf("race watch: the saga finished before the watch started; one line: %v", sagaStatuses(lines))
	}
	if got := s.get(o.ID, alice); fmt.Sprint(got) != fmt.Sprint(lines[len(lines)-1]) {
		t.Fatalf("last line %+v, GET says %+v", lines[len(lines)-1], got)
	}

	// 2. Deterministic: the payment cannot complete while its store is locked, so the watch
	// must start on PENDING; unlocked, the stream goes on to CONFIRMED and ends.
	release := s.lockPayments()
	o2 := s.create(alice, `{"items":[{"sku":"sku-banana","quantity":2}]}`, nil)
	w, code, b := s.openWatch(o2.ID, alice, 20*time.Second)
	if w == nil {
		t.Fatalf("watch: %d %s", code, b)
	}
	defer w.close()
	first, err := w.next()
	if err != nil || first.Status != statusPending || first.ID != o2.ID || first.CustomerID != "watch-alice" {
		t.Fatalf("first line %+v, %v; want the PENDING order", first, err)
	}
	release()
	more, err := w.rest()
	if err != nil {
		t.Fatalf("the watch did not end by itself after the saga completed: %v (lines %+v)", err, more)
	}
	lines2 := append([]sagaOrder{first}, more...)
	sagaCheckStream(t, o2.ID, lines2)
	if last := lines2[len(lines2)-1]; last.Status != statusConfirmed || last.PaymentID == "" {
		t.Fatalf("watch ended on %+v, want CONFIRMED", last)
	}
	t.Logf("locked watch: %v", sagaStatuses(lines2))

	// 3. A final order: exactly its one line, then the end.
	if again := s.watchToEnd(o2.ID, alice); len(again) != 1 || fmt.Sprint(again[0]) != fmt.Sprint(lines2[len(lines2)-1]) {
		t.Fatalf("watch of a final order: %+v, want the one final line %+v", again, lines2[len(lines2)-1])
	}

	// 4. A declined card: the stream ends CANCELLED with the reason.
	o3 := s.create(alice, `{"items":[{"sku":"sku-mug","quantity":1}],"paymentMethod":"pm_card_declined"}`, nil)
	lines3 := s.watchToEnd(o3.ID, alice)
	if last := lines3[len(lines3)-1]; last.Status != statusCancelled || last.StatusReason == "" {
		t.Fatalf("declined watch ended on %+v, want CANCELLED with a reason", last)
	}
	t.Logf("declined watch: %v, reason %q", sagaStatuses(lines3), lines3[len(lines3)-1].StatusReason)

	// 5. Someone else's order and an unknown one: 404 NOT_FOUND, no stream.
	//
	// API.md: every error body is a google.rpc.Status, {"code": ..., "message": ...}, for a
	// :watch refused before its first message too (not grpc-gateway's {"error": ...} stream
	// chunk: see gateway/server/stream.go).
	bob := s.token("watch-bob", "customer")
	for _, id := range []string{o.ID, "no-such-order"} {
		w, code, b := s.openWatch(id, bob, 10*time.Second)
		if w != nil {
			w.close()
			t.Fatalf("bob watching %s: a stream", id)
		}
		var st struct {
			sagaStatus
			Error *sagaStatus `json:"error"`
		}
		sagaDecode(t, "watch refusal", b, &st)
		got := st.sagaStatus
		if st.Error != nil {
			t.Fatalf("bob watching %s: the refusal is a stream error chunk, not a google.rpc.Status: %d %s", id, code, bytes.TrimSpace(b))
		}
		if code != 404 || got.Code != 5 || got.Message == "" {
			t.Fatalf("bob watching %s: %d %s, want 404 NOT_FOUND", id, code, b)
		}
	}
	s.noDeadLetters()
}

// TestSagaWatchClientGoesAway: a client that closes its watch while the order is still
// pending frees the stream: the order service's WatchOrder returns (code Canceled in
// grpc_server_handled_total), the gateway's request ends (http_server_active_requests back
// to 0) and the process's goroutines come back to what they were before the watches. The saga
// itself goes on and the order still completes.
func TestSagaWatchClientGoesAway(t *testing.T) {
	s := startSaga(t)
	alice := s.token("gone-alice", "customer")
	const watchers = 5
	canceled := func() float64 {
		return s.metric("grpc_server_handled_total", `grpc_method="WatchOrder"`, `grpc_code="Canceled"`)
	}
	inFlight := func() float64 { return s.metric("http_server_active_requests") }

	release := s.lockPayments()
	o := s.create(alice, `{"items":[{"sku":"sku-apple","quantity":3}]}`, nil)

	// Baseline, after the keep-alive connection that the scrapes use is open.
	c0 := canceled()
	if n := inFlight(); n != 0 {
		t.Fatalf("%v requests in flight before any watch", n)
	}
	runtime.GC()
	g0 := runtime.NumGoroutine()

	ws := make([]*sagaWatch, 0, watchers)
	defer func() {
		for _, w := range ws {
			w.close()
		}
	}()
	for range watchers {
		w, code, b := s.openWatch(o.ID, alice, 20*time.Second)
		if w == nil {
			t.Fatalf("watch: %d %s", code, b)
		}
		ws = append(ws, w)
		if first, err := w.next(); err != nil || first.Status != statusPending {
			t.Fatalf("first line %+v, %v; want PENDING", first, err)
		}
	}
	if n := inFlight(); n != watchers {
		t.Fatalf("%v requests in flight with %d watches open", n, watchers)
	}
	gOpen := runtime.NumGoroutine()
	if gOpen <= g0 {
		t.Fatalf("goroutines %d with %d watches open, %d before: the measure sees nothing", gOpen, watchers, g0)
	}
	if got := s.get(o.ID, alice); got.Status != statusPending {
		t.Fatalf("order %s while the payment store is locked, want PENDING", got.Status)
	}

	// The clients go away mid-stream.
	for _, w := range ws {
		w.close()
	}
	sagaEventually(t, 10*time.Second, "watch streams freed", func() (bool, string) {
		c, n := canceled(), inFlight()
		runtime.GC()
		g := runtime.NumGoroutine()
		return c == c0+watchers && n == 0 && g <= g0,
			fmt.Sprintf("WatchOrder Canceled %v (want %v), in flight %v, goroutines %d (baseline %d, open %d)", c, c0+watchers, n, g, g0, gOpen)
	})
	if got := s.get(o.ID, alice); got.Status != statusPending {
		t.Fatalf("order %s before the payment store is unlocked, want PENDING (the check above saw open streams only)", got.Status)
	}

	// The saga was not disturbed: unlocked, the order completes.
	release()
	lines := s.watchToEnd(o.ID, alice)
	if last := lines[len(lines)-1]; last.Status != statusConfirmed {
		t.Fatalf("order ended %+v, want CONFIRMED", last)
	}
	s.noDeadLetters()
}

// TestSagaIdempotencyKey: the Idempotency-Key of POST /v1/orders is kept per customer with the
// request it was first used with (services/order/create.go: the record's key is (customer,
// key), its hash covers the items and the payment method with its default applied).
func TestSagaIdempotencyKey(t *testing.T) {
	s := startSaga(t)
	carol := s.token("idem-carol", "customer")
	dave := s.token("idem-dave", "customer")
	const body = `{"items":[{"sku":"sku-coffee","quantity":1}]}`
	key := map[string]string{"Idempotency-Key": "order-2024-0001"}

	listIDs := func(token string) []string {
		code, _, b := s.do("GET", "/v1/orders", token, "", nil)
		if code != 200 {
			t.Fatalf("list: %d %s", code, b)
		}
		var l struct {
			Orders []sagaOrder `json:"orders"`
		}
		sagaDecode(t, "list", b, &l)
		ids := make([]string, len(l.Orders))
		for i, o := range l.Orders {
			ids[i] = o.ID
		}
		return ids
	}

	first := s.create(carol, body, key)
	// The retry answers with the order as it stands now: PENDING still, or already final.
	second := s.post(carol, body, key)
	if second.ID != first.ID || second.CustomerID != "idem-carol" {
		t.Fatalf("same key, same body: %+v then %+v, want the same order", first, second)
	}
	// The same request written differently (the default payment method spelled out, the
	// proto field name) is the same body.
	if o := s.post(carol, `{"items":[{"sku":"sku-coffee","quantity":1}],"payment_method":"pm_card_ok"}`, key); o.ID != first.ID {
		t.Fatalf("same request with the default payment method spelled out: order %s, want %s", o.ID, first.ID)
	}

	// Concurrent retries with the key: all get the one order.
	const retries = 4
	ids := make([]string, retries)
	errs := make([]string, retries)
	var wg sync.WaitGroup
	for i := range retries {
		wg.Go(func() {
			req, err := http.NewRequest("POST", s.base+"/v1/orders", strings.NewReader(body))
			if err != nil {
				errs[i] = err.Error()
				return
			}
			req.Header.Set("Authorization", "Bearer "+carol)
			req.Header.Set("Idempotency-Key", key["Idempotency-Key"])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs[i] = err.Error()
				return
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			var o sagaOrder
			if resp.StatusCode != 200 || json.Unmarshal(b, &o) != nil {
				errs[i] = fmt.Sprintf("%d %s", resp.StatusCode, b)
				return
			}
			ids[i] = o.ID
		})
	}
	wg.Wait()
	for i := range retries {
		if errs[i] != "" || ids[i] != first.ID {
			t.Fatalf("concurrent retry %d: order %q, error %q; want %s", i, ids[i], errs[i], first.ID)
		}
	}

	// Same key, another body: 422 with a google.rpc.Status naming the reason; no order made.
	for _, other := range []string{
		`{"items":[{"sku":"sku-coffee","quantity":2}]}`,
		`{"items":[{"sku":"sku-coffee","quantity":1}],"paymentMethod":"pm_card_declined"}`,
		`{"items":[{"sku":"sku-mug","quantity":1}]}`,
	} {
		code, hdr, b := s.do("POST", "/v1/orders", carol, other, key)
		var st sagaStatus
		sagaDecode(t, "422 body", b, &st)
		if code != 422 || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") || st.Code == 0 || st.Message == "" {
			t.Fatalf("same key, body %s: %d %q %s, want 422 with a google.rpc.Status", other, code, hdr.Get("Content-Type"), b)
		}
		reason := false
		for _, d := range st.Details {
			if d["@type"] == "type.googleapis.com/google.rpc.ErrorInfo" && d["reason"] == "IDEMPOTENCY_KEY_REUSED" {
				reason = true
			}
		}
		if !reason {
			t.Errorf("422 body %s: no ErrorInfo IDEMPOTENCY_KEY_REUSED", b)
		}
	}
	if ids := listIDs(carol); len(ids) != 1 || ids[0] != first.ID {
		t.Fatalf("carol's orders %v, want only %s", ids, first.ID)
	}

	// Keys are per customer: dave's use of the same key, even with another body, is his own.
	d1 := s.create(dave, `{"items":[{"sku":"sku-mug","quantity":1}]}`, key)
	if d1.ID == first.ID || d1.CustomerID != "idem-dave" {
		t.Fatalf("dave with carol's key: %+v, want an order of his own", d1)
	}
	if d2 := s.post(dave, `{"items":[{"sku":"sku-mug","quantity":1}]}`, key); d2.ID != d1.ID {
		t.Fatalf("dave's retry: order %s, want %s", d2.ID, d1.ID)
	}
	if ids := listIDs(dave); len(ids) != 1 || ids[0] != d1.ID {
		t.Fatalf("dave's orders %v, want only %s", ids, d1.ID)
	}

	// A retry after the saga finished returns the order as it stands now, still no second one.
	final := s.watchToEnd(first.ID, carol)
	want := final[len(final)-1]
	if o := s.get(first.ID, carol); o.Status != statusConfirmed {
		t.Fatalf("order %+v, want CONFIRMED", o)
	}
	code, _, b := s.do("POST", "/v1/orders", carol, body, key)
	var replay sagaOrder
	sagaDecode(t, "replay", b, &replay)
	if code != 200 || fmt.Sprint(replay) != fmt.Sprint(want) {
		t.Fatalf("retry after completion: %d %+v, want the current order %+v", code, replay, want)
	}
	if ids := listIDs(carol); len(ids) != 1 {
		t.Fatalf("carol's orders %v after the retries, want one", ids)
	}

	// A key that is not 1 to 255 printable ASCII characters is refused.
	if code, _, b := s.do("POST", "/v1/orders", carol, body, map[string]string{"Idempotency-Key": strings.Repeat("k", 256)}); code != 400 {
		t.Fatalf("256-character key: %d %s, want 400", code, b)
	}

	// One coffee sold (carol's one order), dave's mug settled too.
	s.settle(4, 2)
	if it := s.item("sku-coffee"); it.Available != 39 || it.Reserved != 0 {
		t.Fatalf("coffee %+v, want 39 available (one order of one), 0 reserved", it)
	}
	s.noDeadLetters()
}

// TestSagaDeclinedCard: a declined card cancels the order with a reason, the payment is
// recorded DECLINED, and the stock is exactly what it was.
func TestSagaDeclinedCard(t *testing.T) {
	s := startSaga(t)
	erin := s.token("declined-erin", "customer")
	before := s.item("sku-coffee")

	o := s.create(erin, `{"items":[{"sku":"sku-coffee","quantity":3}],"paymentMethod":"pm_card_declined"}`, nil)
	lines := s.watchToEnd(o.ID, erin)
	final := lines[len(lines)-1]
	if final.Status != statusCancelled || !strings.Contains(final.StatusReason, "declined") {
		t.Fatalf("order ended %+v, want CANCELLED for the declined payment", final)
	}

	s.settle(2, 2) // inventory: OrderCreated, OrderCancelled; payment: OrderCreated, OrderCancelled
	pays := s.payments(o.ID, erin)
	for _, p := range pays {
		if p.Status == paymentCaptured || p.Status == paymentRefunded {
			t.Fatalf("payment %+v of a declined card", p)
		}
	}
	if len(pays) != 1 || pays[0].Status != paymentDeclined || pays[0].DeclineReason == "" || pays[0].AmountCents != "7350" || pays[0].OrderID != o.ID {
		t.Fatalf("payments %+v, want one DECLINED of 7350 with a reason", pays)
	}
	if after := s.item("sku-coffee"); after != before || after.Reserved != 0 {
		t.Fatalf("coffee %+v after the declined order, want %+v with 0 reserved", after, before)
	}
	s.noDeadLetters()
}

// TestSagaOutOfStock: an order of more than is available is cancelled with the reason; no
// payment stays captured (refunded, or never charged) and the stock is unchanged.
func TestSagaOutOfStock(t *testing.T) {
	s := startSaga(t)
	frank := s.token("stock-frank", "customer")
	before := s.item("sku-limited")
	if before.Available != 1 || before.Reserved != 0 {
		t.Fatalf("sku-limited seeded %+v, want 1 available", before)
	}

	o := s.create(frank, `{"items":[{"sku":"sku-limited","quantity":2}]}`, nil)
	lines := s.watchToEnd(o.ID, frank)
	final := lines[len(lines)-1]
	if final.Status != statusCancelled || !strings.Contains(final.StatusReason, "out of stock") {
		t.Fatalf("order ended %+v, want CANCELLED out of stock", final)
	}

	s.settle(2, 2)
	pays := s.payments(o.ID, frank)
	for _, p := range pays {
		if p.Status == paymentCaptured {
			t.Fatalf("payment left captured: %+v", p)
		}
	}
	if len(pays) > 1 {
		t.Fatalf("payments %+v, want at most one", pays)
	}
	t.Logf("out of stock: reason %q, payments %+v", final.StatusReason, pays)
	if after := s.item("sku-limited"); after != before {
		t.Fatalf("sku-limited %+v after the rejected order, want %+v", after, before)
	}
	s.noDeadLetters()
}

// TestSagaCustomerCancel: a customer's cancel right after the create races the saga; whichever
// wins, the end is consistent. Then the two outcomes are forced: a cancel while the payment
// cannot complete (it wins: the late capture is refunded), and a cancel of a confirmed order
// (FAILED_PRECONDITION).
func TestSagaCustomerCancel(t *testing.T) {
	s := startSaga(t)
	gina := s.token("cancel-gina", "customer")
	inv, pay := 0.0, 0.0 // events inventory and payment will have handled

	// checkEnd waits for the order's final state and checks stock and payments against it.
	checkEnd := func(o sagaOrder, before item, qty int) string {
		t.Helper()
		lines := s.watchToEnd(o.ID, gina)
		final := lines[len(lines)-1]
		inv += 2
		if final.Status == statusCancelled {
			pay += 2
		} else {
			pay++
		}
		s.settle(inv, pay)
		after := s.item("sku-apple")
		pays := s.payments(o.ID, gina)
		switch final.Status {
		case statusCancelled:
			if final.StatusReason == "" {
				t.Fatalf("cancelled order without a reason: %+v", final)
			}
			if after != before {
				t.Fatalf("apples %+v after a cancelled order, want %+v", after, before)
			}
			if len(pays) > 1 || (len(pays) == 1 && pays[0].Status != paymentRefunded) {
				t.Fatalf("payments %+v of a cancelled order, want none or one REFUNDED", pays)
			}
		case statusConfirmed:
			if after.Available != before.Available-qty || after.Reserved != 0 {
				t.Fatalf("apples %+v after a confirmed order of %d, before %+v", after, qty, before)
			}
			if len(pays) != 1 || pays[0].Status != paymentCaptured || pays[0].ID != final.PaymentID {
				t.Fatalf("payments %+v of a confirmed order (payment id %q), want one CAPTURED", pays, final.PaymentID)
			}
		}
		return final.Status
	}

	// The race.
	before := s.item("sku-apple")
	o := s.create(gina, `{"items":[{"sku":"sku-apple","quantity":4}]}`, nil)
	code, _, b := s.do("POST", "/v1/orders/"+o.ID+":cancel", gina, `{}`, nil)
	switch code {
	case 200:
		var c sagaOrder
		sagaDecode(t, "cancel", b, &c)
		if c.ID != o.ID || c.Status != statusCancelled || c.StatusReason == "" {
			t.Fatalf("cancel: %+v, want the CANCELLED order", c)
		}
		t.Log("race: the cancel won")
	case 400:
		var st sagaStatus
		sagaDecode(t, "cancel refusal", b, &st)
		if st.Code != 9 {
			t.Fatalf("cancel: 400 %s, want FAILED_PRECONDITION", b)
		}
		t.Log("race: the saga confirmed the order first")
	default:
		t.Fatalf("cancel: %d %s", code, b)
	}
	end := checkEnd(o, before, 4)
	if (code == 200) != (end == statusCancelled) {
		t.Fatalf("cancel answered %d but the order ended %s", code, end)
	}

	// The cancel wins: the payment is held up, so the order is surely pending.
	before = s.item("sku-apple")
	release := s.lockPayments()
	o2 := s.create(gina, `{"items":[{"sku":"sku-apple","quantity":5}]}`, nil)
	code, _, b = s.do("POST", "/v1/orders/"+o2.ID+":cancel", gina, `{}`, nil)
	var c2 sagaOrder
	sagaDecode(t, "cancel", b, &c2)
	if code != 200 || c2.Status != statusCancelled || c2.StatusReason != "cancelled by customer" {
		t.Fatalf("cancel of a pending order: %d %s", code, b)
	}
	// A second cancel: it is no longer pending.
	if code, _, b := s.do("POST", "/v1/orders/"+o2.ID+":cancel", gina, `{}`, nil); code != 400 || !strings.Contains(string(b), `"code":9`) {
		t.Fatalf("second cancel: %d %s, want 400 FAILED_PRECONDITION", code, b)
	}
	release() // the payment service now charges the card (OrderCreated first), then refunds it
	if end := checkEnd(o2, before, 5); end != statusCancelled {
		t.Fatalf("order cancelled while pending ended %s", end)
	}
	if pays := s.payments(o2.ID, gina); len(pays) != 1 || pays[0].Status != paymentRefunded {
		t.Fatalf("payments %+v, want the late capture REFUNDED", pays)
	}
	if got := s.get(o2.ID, gina); got.Status != statusCancelled || got.StatusReason != "cancelled by customer" {
		t.Fatalf("order after the late capture: %+v, want it still CANCELLED by the customer", got)
	}

	// The saga wins: a confirmed order cannot be cancelled and stays confirmed.
	before = s.item("sku-apple")
	o3 := s.create(gina, `{"items":[{"sku":"sku-apple","quantity":1}]}`, nil)
	if end := checkEnd(o3, before, 1); end != statusConfirmed {
		t.Fatalf("order ended %s, want CONFIRMED", end)
	}
	code, _, b = s.do("POST", "/v1/orders/"+o3.ID+":cancel", gina, `{}`, nil)
	var st sagaStatus
	sagaDecode(t, "cancel refusal", b, &st)
	if code != 400 || st.Code != 9 || st.Message == "" {
		t.Fatalf("cancel of a confirmed order: %d %s, want 400 FAILED_PRECONDITION", code, b)
	}
	if got := s.get(o3.ID, gina); got.Status != statusConfirmed {
		t.Fatalf("order after a refused cancel: %+v", got)
	}
	// Another customer's order: not found, not cancelled.
	if code, _, b := s.do("POST", "/v1/orders/"+o3.ID+":cancel", s.token("cancel-hank", "customer"), `{}`, nil); code != 404 {
		t.Fatalf("hank cancelling gina's order: %d %s, want 404", code, b)
	}
	s.noDeadLetters()
}

// TestSagaAdminRefund: an admin refunds a confirmed order's payment; refunding it again
// returns it unchanged, a declined payment cannot be refunded, and a customer may not refund.
func TestSagaAdminRefund(t *testing.T) {
	s := startSaga(t)
	ivy := s.token("refund-ivy", "customer")
	admin := s.token("refund-admin", "admin")

	o := s.create(ivy, `{"items":[{"sku":"sku-mug","quantity":2}]}`, nil)
	lines := s.watchToEnd(o.ID, ivy)
	final := lines[len(lines)-1]
	if final.Status != statusConfirmed || final.PaymentID == "" {
		t.Fatalf("order ended %+v, want CONFIRMED", final)
	}
	pays := s.payments(o.ID, ivy)
	if len(pays) != 1 || pays[0].ID != final.PaymentID || pays[0].Status != paymentCaptured || pays[0].AmountCents != "1800" || pays[0].Currency != "USD" {
		t.Fatalf("payments %+v, want one CAPTURED 1800 USD, id %s", pays, final.PaymentID)
	}
	path := "/v1/payments/" + final.PaymentID + ":refund"

	if code, _, b := s.do("POST", path, ivy, `{}`, nil); code != 403 || !strings.Contains(string(b), `"code":7`) {
		t.Fatalf("customer refund: %d %s, want 403 PERMISSION_DENIED", code, b)
	}
	if code, _, b := s.do("POST", path, "", `{}`, nil); code != 401 {
		t.Fatalf("anonymous refund: %d %s, want 401", code, b)
	}

	code, _, b := s.do("POST", path, admin, `{}`, nil)
	var r1 sagaPayment
	sagaDecode(t, "refund", b, &r1)
	if code != 200 || r1.ID != final.PaymentID || r1.Status != paymentRefunded || r1.OrderID != o.ID || r1.AmountCents != "1800" {
		t.Fatalf("refund: %d %s, want the payment REFUNDED", code, b)
	}
	// Again: services/payment/service.go returns a refunded payment unchanged (no second
	// PaymentRefunded).
	code, _, b = s.do("POST", path, admin, `{}`, nil)
	var r2 sagaPayment
	sagaDecode(t, "second refund", b, &r2)
	if code != 200 || r2 != r1 {
		t.Fatalf("second refund: %d %+v, want the refunded payment unchanged %+v", code, r2, r1)
	}
	var got sagaPayment
	if code, _, b := s.do("GET", "/v1/payments/"+final.PaymentID, ivy, "", nil); code != 200 {
		t.Fatalf("get payment: %d %s", code, b)
	} else {
		sagaDecode(t, "payment", b, &got)
	}
	if got != r1 {
		t.Fatalf("payment %+v, want %+v", got, r1)
	}
	if pays := s.payments(o.ID, admin); len(pays) != 1 || pays[0] != r1 {
		t.Fatalf("payments after the refunds %+v, want the one refunded", pays)
	}
	t.Logf("order after the admin refund: %s (the order service does not consume PaymentRefunded)", s.get(o.ID, ivy).Status)

	// A declined payment: FAILED_PRECONDITION. An unknown one: NOT_FOUND.
	d := s.create(ivy, `{"items":[{"sku":"sku-mug","quantity":1}],"paymentMethod":"pm_card_declined"}`, nil)
	dl := s.watchToEnd(d.ID, ivy)
	if dl[len(dl)-1].Status != statusCancelled {
		t.Fatalf("declined order ended %+v", dl[len(dl)-1])
	}
	s.settle(4, 3) // inventory: 2 per order; payment: 1 for the confirmed order, 2 for the declined
	dp := s.payments(d.ID, ivy)
	if len(dp) != 1 || dp[0].Status != paymentDeclined {
		t.Fatalf("payments of the declined order %+v", dp)
	}
	code, _, b = s.do("POST", "/v1/payments/"+dp[0].ID+":refund", admin, `{}`, nil)
	var st sagaStatus
	sagaDecode(t, "refund of a declined payment", b, &st)
	if code != 400 || st.Code != 9 {
		t.Fatalf("refund of a declined payment: %d %s, want 400 FAILED_PRECONDITION", code, b)
	}
	if code, _, b := s.do("POST", "/v1/payments/no-such-payment:refund", admin, `{}`, nil); code != 404 {
		t.Fatalf("refund of an unknown payment: %d %s, want 404", code, b)
	}
	s.noDeadLetters()
}
