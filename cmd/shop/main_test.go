package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/devkey"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stack is one run of the program on a data folder.
type stack struct {
	base   string // http://127.0.0.1:port
	cancel context.CancelFunc
	done   chan error
	stderr *syncBuffer
}

// startStack runs the program as `make run` does, on a free port, and waits until it serves.
func startStack(t *testing.T, data string, extra ...string) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st := &stack{cancel: cancel, done: make(chan error, 1), stderr: &syncBuffer{}}
	stdout := &syncBuffer{}
	args := append([]string{"-data", data, "-listen", "127.0.0.1:0"}, extra...)
	go func() { st.done <- run(ctx, args, stdout, st.stderr) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, addr, ok := strings.Cut(stdout.String(), "gateway listening on "); ok {
			st.base = "http://" + strings.TrimSpace(addr)
			break
		}
		select {
		case err := <-st.done:
			cancel()
			t.Fatalf("run ended before serving: %v\n%s", err, st.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("the stack did not start:\n%s", st.stderr.String())
		}
	}
	return st
}

// stop sends the equivalent of SIGTERM and waits for a clean exit.
func (st *stack) stop(t *testing.T) {
	t.Helper()
	st.cancel()
	select {
	case err := <-st.done:
		if err != nil {
			t.Fatalf("run: %v\n%s", err, st.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the stack did not stop within 30s")
	}
}

// call sends one request with a real HTTP client and decodes the JSON answer into out.
func (st *stack) call(t *testing.T, method, path, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, st.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("%s %s: no X-Request-Id", method, path)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, b, err)
		}
	}
	return resp.StatusCode
}

type orderJSON struct {
	ID        string `json:"id"`
	Customer  string `json:"customerId"`
	Status    string `json:"status"`
	PaymentID string `json:"paymentId"`
}

type item struct {
	Available int `json:"available"`
	Reserved  int `json:"reserved"`
}

// TestStackEndToEnd runs the single-process stack as `make run` does and drives the order flow
// through its gateway with a token from the development key, then restarts it on the same
// folder: nothing is lost.
func TestStackEndToEnd(t *testing.T) {
	data := t.TempDir()
	st := startStack(t, data)
	defer func() {
		if st != nil {
			st.stop(t)
		}
	}()

	if code := st.call(t, "GET", "/healthz", "", "", nil); code != 200 {
		t.Fatalf("healthz: %d", code)
	}
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if code := st.call(t, "GET", devkey.JWKSPath, "", "", &jwks); code != 200 || len(jwks.Keys) != 1 || jwks.Keys[0]["kty"] != "OKP" || jwks.Keys[0]["d"] != nil {
		t.Fatalf("jwks: %d %v", code, jwks)
	}
	if fi, err := os.Stat(filepath.Join(data, "devkeys", devkey.PrivateKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("private key file: %v %v", fi, err)
	}
	var before item
	if code := st.call(t, "GET", "/v1/inventory/items/sku-apple", "", "", &before); code != 200 || before.Available == 0 {
		t.Fatalf("seeded item: %d %+v", code, before)
	}

	key, err := devkey.LoadOrCreate(filepath.Join(data, "devkeys"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := key.Mint(devkey.Claims{Subject: "alice", Roles: []string{"customer"}})
	if err != nil {
		t.Fatal(err)
	}
	var status struct {
		Code int `json:"code"`
	}
	if code := st.call(t, "POST", "/v1/orders", "", `{"items":[{"sku":"sku-apple","quantity":2}]}`, &status); code != 401 || status.Code != 16 {
		t.Fatalf("order without a token: %d %+v", code, status)
	}
	var created orderJSON
	if code := st.call(t, "POST", "/v1/orders", token, `{"items":[{"sku":"sku-apple","quantity":2}]}`, &created); code != 200 || created.Status != "ORDER_STATUS_PENDING" || created.Customer != "alice" {
		t.Fatalf("create: %d %+v", code, created)
	}
	final := waitFinal(t, st, created.ID, token)
	if final.Status != "ORDER_STATUS_CONFIRMED" || final.PaymentID == "" {
		t.Fatalf("order ended %+v, want CONFIRMED with a payment", final)
	}
	// The order is CONFIRMED before inventory has taken the reservation out of stock (it does
	// so on OrderConfirmed): wait for it, bounded.
	var after item
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		st.call(t, "GET", "/v1/inventory/items/sku-apple", "", "", &after)
		if after.Reserved == 0 || time.Now().After(deadline) {
			break
		}
	}
	if after.Available != before.Available-2 || after.Reserved != 0 {
		t.Fatalf("stock %+v after ordering 2 of %+v", after, before)
	}

	// The storefront, through the gateway: the order with its item and payment in one call,
	// on alice's passport delegated to the three services.
	var view struct {
		Order orderJSON `json:"order"`
		Lines []struct {
			Name              string `json:"name"`
			CurrentPriceCents string `json:"currentPriceCents"`
		} `json:"lines"`
		Payment struct {
			Status string `json:"status"`
		} `json:"payment"`
		Missing []string `json:"missing"`
	}
	if code := st.call(t, "GET", "/v1/storefront/orders/"+created.ID, token, "", &view); code != 200 || view.Order.ID != created.ID ||
		len(view.Lines) != 1 || view.Lines[0].Name != "Apple" || view.Payment.Status != "PAYMENT_STATUS_CAPTURED" || len(view.Missing) != 0 {
		t.Fatalf("storefront order view: %d %+v", code, view)
	}
	var home struct {
		RecentOrders []orderJSON `json:"recentOrders"`
		Catalogue    []item      `json:"catalogue"`
		Missing      []string    `json:"missing"`
	}
	if code := st.call(t, "GET", "/v1/storefront/home?orders_page_size=1&catalogue_page_size=3", token, "", &home); code != 200 ||
		len(home.RecentOrders) != 1 || home.RecentOrders[0].ID != created.ID || len(home.Catalogue) != 3 || len(home.Missing) != 0 {
		t.Fatalf("storefront home: %d %+v", code, home)
	}

	st.stop(t)
	st = startStack(t, data)
	var again orderJSON
	if code := st.call(t, "GET", "/v1/orders/"+created.ID, token, "", &again); code != 200 || again != final {
		t.Fatalf("after a restart: %d %+v, want %+v", code, again, final)
	}
	var kept item
	st.call(t, "GET", "/v1/inventory/items/sku-apple", "", "", &kept)
	if kept != after {
		t.Fatalf("stock after a restart %+v, want %+v (no second seed)", kept, after)
	}
}

func waitFinal(t *testing.T, st *stack, id, token string) orderJSON {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var o orderJSON
		if code := st.call(t, "GET", "/v1/orders/"+id, token, "", &o); code != 200 {
			t.Fatalf("get order: %d", code)
		}
		if o.Status != "ORDER_STATUS_PENDING" {
			return o
		}
		if time.Now().After(deadline) {
			t.Fatalf("order %s still pending after 20s", id)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestConfigErrors: a gateway file that names upstreams, or has an unknown key, stops start-up
// with a message naming the problem.
func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct{ name, yaml, want string }{
		{"upstreams", "upstreams: {shop.order.v1.OrderService: {addresses: [\"127.0.0.1:1\"]}}\n", "upstreams are set by shop"},
		{"unknown key", "listn: 127.0.0.1:0\n", "listn"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := t.TempDir()
			path := filepath.Join(data, "gw.yaml")
			if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			err := run(context.Background(), []string{"-data", data, "-listen", "127.0.0.1:0", "-config", path}, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run: %v, want an error naming %q", err, tc.want)
			}
		})
	}
}
