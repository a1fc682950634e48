package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/passport"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/internal/shopapi"
	spassport "github.com/acme/shopgate/services/passport"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
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

// logLine returns the first JSON log line whose msg is msg, or nil.
func (s *syncBuffer) logLine(msg string) map[string]any {
	for _, l := range strings.Split(s.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	return nil
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// passportYAML is the passport section of a served configuration: a key folder with one key.
func passportYAML(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "passport")
	if err := passport.EnsureKey(dir); err != nil {
		t.Fatal(err)
	}
	return "passport: {key_dir: \"" + dir + "\"}\n"
}

func TestRoutesSubcommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"routes", "-config", "../../gateway/config/example.yaml"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v (%s)", err, errOut.String())
	}
	text := out.String()
	for _, want := range []string{
		"METHOD", "PATH", "RPC", "AUTH", "ROLES", "RATE LIMIT", "TIMEOUT", "IDEMPOTENT", "FALLBACK", "DELEGATES",
		"POST    /v1/orders ", "/shop.order.v1.OrderService/CreateOrder", "customer,admin", "20/1m0s burst 5",
		"/shop.inventory.v1.InventoryService/ListItems", `200 {"items":[]}`,
		"/shop.payment.v1.PaymentService/RefundPayment",
		"GET     /v1/storefront/orders/{id}", "/shop.storefront.v1.StorefrontService/GetOrderView",
		"shop.order.v1.OrderService,shop.inventory.v1.InventoryService,shop.payment.v1.PaymentService",
		// where each value came from
		"UPSTREAM", "2s (proto-service)", "20/1m0s burst 5 (yaml-rpc)", "3s (yaml-service)", "none (proto-method)", "required (default)",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("routes output lacks %q:\n%s", want, text)
		}
	}
	bindings := shopapi.Bindings()
	if n := strings.Count(strings.TrimSpace(text), "\n"); n != len(bindings) {
		t.Errorf("routes output has %d rows, want one per google.api.http binding: %d", n, len(bindings))
	}
	for _, b := range bindings {
		if !strings.Contains(text, b.RPC+" ") {
			t.Errorf("routes output lacks %s", b.RPC)
		}
	}
}

// TestRoutesMarksServicesWithoutUpstream checks that `gateway routes` says UPSTREAM none on the
// routes of a service the file gives no upstream, and only on those.
func TestRoutesMarksServicesWithoutUpstream(t *testing.T) {
	dir := t.TempDir()
	write := func(name, yaml string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	every := "upstreams:\n"
	for _, name := range shopapi.Names() {
		every += "  " + name + `: {addresses: ["127.0.0.1:1"]}` + "\n"
	}
	inventory := inventoryv1.InventoryService_ServiceDesc.ServiceName
	tests := []struct {
		name   string
		yaml   string
		served func(service string) bool
	}{
		{"every service has an upstream", every, func(string) bool { return true }},
		{"none has", "{}\n", func(string) bool { return false }},
		{"only the inventory has", "upstreams: {" + inventory + `: {addresses: ["127.0.0.1:1"]}}` + "\n", func(s string) bool { return s == inventory }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			if err := run(context.Background(), []string{"routes", "-config", write(tt.name+".yaml", tt.yaml)}, &out, &errOut); err != nil {
				t.Fatalf("run: %v (%s)", err, errOut.String())
			}
			rows := map[string]string{} // RPC -> its row
			for _, row := range strings.Split(strings.TrimSpace(out.String()), "\n")[1:] {
				rows[strings.Fields(row)[2]] = row
			}
			for _, b := range shopapi.Bindings() {
				row, ok := rows[b.RPC]
				if !ok {
					t.Fatalf("no row for %s:\n%s", b.RPC, out.String())
				}
				service := strings.Split(b.RPC, "/")[1]
				if marked := strings.Fields(row)[3] == "none"; marked == tt.served(service) {
					t.Errorf("%s: UPSTREAM none = %t, want %t:\n%s", b.RPC, marked, !tt.served(service), row)
				}
			}
		})
	}
}

// TestPassportKeysSubcommand makes two keys and the JWKS of both, which a service's verifier
// accepts with both kids.
func TestPassportKeysSubcommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	var kids []string
	for range 2 {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"passport-keys", "new", "-dir", dir}, &out, io.Discard); err != nil {
			t.Fatal(err)
		}
		kids = append(kids, strings.Fields(out.String())[0])
	}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := run(context.Background(), []string{"passport-keys", "jwks", "-out", file, dir}, io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	v, err := spassport.NewVerifier(spassport.Options{JWKSFile: file})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(kids)
	if got := v.KeyIDs(); !slices.Equal(got, kids) {
		t.Errorf("the JWKS trusts %v, want %v", got, kids)
	}

	// The two sides agree: what the gateway signs with the folder's newest key, a service
	// trusting the JWKS reads back as the same caller, for the service named and no other.
	signer, err := passport.New(passport.Config{KeyDir: dir}, passport.Options{})
	if err != nil {
		t.Fatal(err)
	}
	id := identity.Identity{Source: "partner", Subject: "partner|josé 🙂", Roles: []string{"customer", "a,b", " admin"}, Method: identity.MethodJWT}
	tok, err := signer.Sign(id, "shop.order.v1.OrderService")
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(tok, "shop.order.v1.OrderService")
	if err != nil || c.Subject != id.Subject || c.Source != id.Source || !slices.Equal(c.Roles, id.Roles) || c.Auth != "jwt" || c.IsAdmin() {
		t.Errorf("the service reads %+v (%v), want %+v", c, err, id)
	}
	if _, err := v.Verify(tok, "shop.payment.v1.PaymentService"); err == nil {
		t.Error("the payment service accepted the order service's passport")
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:0\nroutez: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	nokeys := filepath.Join(dir, "nokeys.yaml")
	if err := os.WriteFile(nokeys, []byte("listen: 127.0.0.1:0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("routes: {shop.order.v1.OrderService/Nope: {timeout: 1s}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"-config", bad}, "routez"},
		{"missing file", []string{"-config", filepath.Join(dir, "none.yaml")}, "none.yaml"},
		{"unknown RPC", []string{"routes", "-config", unknown}, "shop.order.v1.OrderService/Nope"},
		{"bad flag", []string{"-nope"}, "nope"},
		{"no passport key folder", []string{"-config", nokeys}, "passport.key_dir is required"},
		{"passport keys: no command", []string{"passport-keys"}, "want new or jwks"},
		{"passport keys: no folder", []string{"passport-keys", "new"}, "-dir"},
		{"passport keys: empty folder", []string{"passport-keys", "jwks", dir}, "no *.pem"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error()+errOut.String(), tt.want) {
				t.Fatalf("run error = %v (stderr %q), want one naming %q", err, errOut.String(), tt.want)
			}
		})
	}
}

// TestServeReloadStop runs the binary's run: it serves, reloads on SIGHUP (and keeps the old
// configuration when the new file is bad), and stops gracefully when its context ends.
func TestServeReloadStop(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	_ = ln.Close()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	// SIGHUP alone reloads: the file watch (watch_test.go) would reload the writes too.
	base := "listen: 127.0.0.1:0\nserver: {watch_config: false, drain_delay: -1s}\nupstreams: {shop.inventory.v1.InventoryService: {addresses: [\"" + dead + "\"]}}\n" + passportYAML(t)
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", path}, &bytes.Buffer{}, logs) }()

	var addr string
	poll(t, "the listening log line", func() bool {
		if l := logs.logLine("gateway listening"); l != nil {
			addr, _ = l["addr"].(string)
		}
		return addr != ""
	})
	get := func(p string) int {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/healthz"); got != 200 {
		t.Fatalf("/healthz = %d", got)
	}
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	scrape, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if !strings.Contains(string(scrape), "\ngateway_access_log_dropped_total 0\n") {
		t.Errorf("/metrics has no gateway_access_log_dropped_total 0:\n%s", scrape)
	}
	// ListItems is public; with no credential it reaches the (dead) upstream: 503.
	if got := get("/v1/inventory/items"); got != 503 {
		t.Fatalf("before reload: %d, want 503", got)
	}

	write(base + "routes: {shop.inventory.v1.InventoryService/ListItems: {auth: required}}\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, "the reload log line", func() bool { return logs.logLine("config reloaded") != nil })
	if got := get("/v1/inventory/items"); got != 401 {
		t.Errorf("after reload: %d, want 401", got)
	}

	write(base + "routes: {shop.inventory.v1.InventoryService/Nope: {auth: none}}\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, "the refusal log line", func() bool {
		l := logs.logLine("config reload refused; the previous configuration stays")
		return l != nil && strings.Contains(l["error"].(string), "InventoryService/Nope")
	})
	if got := get("/v1/inventory/items"); got != 401 {
		t.Errorf("after a refused reload: %d, want 401 (old config)", got)
	}

	cancel()
	waitRun(t, done, 10*time.Second)
	if logs.logLine("gateway stopped") == nil {
		t.Error("no stop log line")
	}
	// The access log is buffered; by the time run returns, every request's line is written.
	var statuses []float64
	for _, l := range logs.logLines("request") {
		statuses = append(statuses, l["status"].(float64))
	}
	if want := []float64{503, 401, 401}; !slices.Equal(statuses, want) {
		t.Errorf("access log statuses %v, want %v", statuses, want)
	}
}

// logLines returns the JSON log lines whose msg is msg, in order.
func (s *syncBuffer) logLines(msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(s.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}

// inventoryUpstream is a real gRPC inventory service on loopback whose GetItem takes a
// millisecond, so that requests are in flight while the gateway reloads.
type inventoryUpstream struct {
	inventoryv1.UnimplementedInventoryServiceServer
	calls atomic.Int64
}

func (u *inventoryUpstream) GetItem(ctx context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.Item, error) {
	u.calls.Add(1)
	select {
	case <-time.After(time.Millisecond):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return &inventoryv1.Item{Sku: req.GetSku(), Name: "widget", PriceCents: 500, Currency: "USD"}, nil
}

func startInventory(t *testing.T) (*inventoryUpstream, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &inventoryUpstream{}
	gs := grpc.NewServer()
	inventoryv1.RegisterInventoryServiceServer(gs, u)
	hs := health.NewServer()
	healthpb.RegisterHealthServer(gs, hs)
	done := make(chan struct{})
	go func() { defer close(done); _ = gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); hs.Shutdown(); <-done })
	return u, ln.Addr().String()
}

// TestReloadUnderLoad runs the real program in front of a real gRPC upstream while client
// goroutines send requests without pause, and sends it SIGHUPs with valid files (a new rate
// limit, new CORS origins) and invalid ones: no request fails, every valid change is in force
// after its reload, and every invalid file is refused with a log line naming the problem while
// the previous configuration stays.
func TestReloadUnderLoad(t *testing.T) {
	// Until run installs its own handler, a SIGHUP would kill the test binary: make sure none can.
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGHUP)
	defer signal.Stop(sigs)

	up, upAddr := startInventory(t)
	const originA, originB = "https://a.shop.example", "https://b.shop.example"
	keys := passportYAML(t)
	const probeScale = 10000 // ListItems's limit is GetItem's / probeScale
	file := func(requests int, origins ...string) string {
		return "listen: 127.0.0.1:0\nserver: {watch_config: false, drain_delay: -1s}\n" + keys + // SIGHUP alone reloads
			"upstreams: {shop.inventory.v1.InventoryService: {addresses: [\"" + upAddr + "\"]}}\n" +
			// ListItems, which the load leaves alone, has a limit a probe can reach: the limit in
			// force is the one its 429 names (RateLimit-Policy is on refusals only).
			fmt.Sprintf("routes: {shop.inventory.v1.InventoryService/GetItem: {rate_limit: {requests: %d, per: 60s, burst: %d}},\n", requests, requests) +
			fmt.Sprintf("  shop.inventory.v1.InventoryService/ListItems: {rate_limit: {requests: %d, per: 60s, burst: %d}}}\n", requests/probeScale, requests/probeScale) +
			"cors: {allowed_origins: [\"" + strings.Join(origins, `", "`) + "\"]}\n"
	}
	policy := func(requests int) string { return fmt.Sprintf(`"default";q=%d;w=60`, requests/probeScale) }
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(file(100000, originA))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", path}, &bytes.Buffer{}, logs) }()
	var addr string
	poll(t, "the listening log line", func() bool {
		if l := logs.logLine("gateway listening"); l != nil {
			addr, _ = l["addr"].(string)
		}
		return addr != ""
	})
	base := "http://" + addr
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	type answer struct {
		status int
		header http.Header
	}
	send := func(method, p string, h http.Header) (answer, error) {
		req, err := http.NewRequest(method, base+p, nil)
		if err != nil {
			return answer{}, err
		}
		req.Header = h
		resp, err := client.Do(req)
		if err != nil {
			return answer{}, err
		}
		defer resp.Body.Close()
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return answer{}, err
		}
		return answer{resp.StatusCode, resp.Header}, nil
	}
	item := "/v1/inventory/items/sku-1"
	// Served means Serve runs, which run starts after its SIGHUP handler is installed.
	poll(t, "the first item to be served", func() bool {
		a, err := send("GET", item, nil)
		return err == nil && a.status == 200
	})

	// The load: GETs (200) and CORS preflights (204), without pause, until stop.
	const workers = 6
	stop := make(chan struct{})
	var sent, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := time.Now().Add(30 * time.Second) // a bound even if the test never closes stop
			for i := 0; i < 200000 && time.Now().Before(deadline); i++ {
				select {
				case <-stop:
					return
				default:
				}
				method, want := "GET", 200
				h := http.Header{"Origin": {originA}}
				if (i+w)%4 == 0 {
					method, want = "OPTIONS", 204
					h.Set("Access-Control-Request-Method", "GET")
				}
				a, err := send(method, item, h)
				sent.Add(1)
				if err == nil && a.status == want {
					continue
				}
				failed.Add(1)
				failMu.Lock()
				if len(failures) < 5 {
					failures = append(failures, fmt.Sprintf("%s %s: status %d, error %v", method, item, a.status, err))
				}
				failMu.Unlock()
			}
		}()
	}
	stopLoad := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopLoad()

	const (
		msgReloaded = "config reloaded"
		msgRefused  = "config reload refused; the previous configuration stays"
	)
	steps := []struct {
		name    string
		file    string
		errHas  string // empty: a valid file
		limit   int    // the limit in force afterwards
		allowed string // an origin allowed afterwards
		refused string // an origin refused afterwards, if any
	}{
		{"raise the limit, add an origin", file(200000, originA, originB), "", 200000, originB, ""},
		{"invalid: an unknown key", file(300000, originA) + "routez: {}\n", "routez", 200000, originB, ""},
		{"lower the limit, drop an origin", file(150000, originB), "", 150000, originB, originA},
		{"invalid: a bad CIDR", file(400000, originA) + "ip_rules: {deny: [\"300.1.2.3/8\"]}\n", "300.1.2.3", 150000, originB, originA},
		{"invalid: a limit of 0", file(0, originA), "requests", 150000, originB, originA},
		{"back to the first file", file(100000, originA), "", 100000, originA, originB},
	}
	for _, st := range steps {
		reloaded, refused := len(logs.logLines(msgReloaded)), len(logs.logLines(msgRefused))
		sentBefore := sent.Load()
		write(st.file)
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		poll(t, st.name+": the reload's log line", func() bool {
			return len(logs.logLines(msgReloaded))+len(logs.logLines(msgRefused)) > reloaded+refused
		})
		if st.errHas == "" {
			if n := len(logs.logLines(msgReloaded)); n != reloaded+1 {
				t.Fatalf("%s: the valid file was refused: %v", st.name, logs.logLines(msgRefused))
			}
		} else {
			ls := logs.logLines(msgRefused)
			if len(ls) != refused+1 {
				t.Fatalf("%s: the invalid file was not refused", st.name)
			}
			if e, _ := ls[len(ls)-1]["error"].(string); !strings.Contains(e, st.errHas) || ls[len(ls)-1]["level"] != "ERROR" {
				t.Errorf("%s: refusal %v, want an ERROR line whose error names %q", st.name, ls[len(ls)-1], st.errHas)
			}
		}
		// What is in force now.
		a, err := send("GET", item, http.Header{"Origin": {st.allowed}})
		if err != nil || a.status != 200 {
			t.Fatalf("%s: probe: %v %v", st.name, a.status, err)
		}
		// The limit in force: ListItems until its 429, whose RateLimit-Policy names it.
		for i := 0; ; i++ {
			l, err := send("GET", "/v1/inventory/items", nil)
			if err != nil || i > st.limit/probeScale { // an allowed probe may be 501: this upstream lists nothing

				t.Fatalf("%s: limit probe %d: %d %v, want a 429 within %d", st.name, i, l.status, err, st.limit/probeScale+1)
			}
			if l.status == 429 {
				if got := l.header.Get("RateLimit-Policy"); got != policy(st.limit) {
					t.Errorf("%s: RateLimit-Policy %q, want %q", st.name, got, policy(st.limit))
				}
				break
			}
		}
		if got := a.header.Get("Access-Control-Allow-Origin"); got != st.allowed {
			t.Errorf("%s: Access-Control-Allow-Origin %q for %s, want it allowed", st.name, got, st.allowed)
		}
		if st.refused != "" {
			a, err := send("OPTIONS", item, http.Header{"Origin": {st.refused}, "Access-Control-Request-Method": {"GET"}})
			if err != nil || a.status != 204 || a.header.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("%s: preflight from %s: %d %v, Access-Control-Allow-Origin %q; want it refused", st.name, st.refused, a.status, err, a.header.Get("Access-Control-Allow-Origin"))
			}
		}
		// Let the load run on this configuration for a moment before the next reload.
		poll(t, st.name+": requests under the new configuration", func() bool { return sent.Load() >= sentBefore+50 })
	}
	stopLoad()
	t.Logf("%d requests (%d upstream calls) across %d reloads, %d failed", sent.Load(), up.calls.Load(), len(steps), failed.Load())
	if n := failed.Load(); n != 0 {
		t.Errorf("%d of %d requests failed during the reloads; first: %v", n, sent.Load(), failures)
	}
	if sent.Load() < int64(len(steps))*50 {
		t.Errorf("only %d requests were sent: no real load", sent.Load())
	}

	cancel()
	waitRun(t, done, 15*time.Second)
}

// TestRoutesShowsPools: an upstream with pools gets its pools and rules printed after the
// route table.
func TestRoutesShowsPools(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	yaml := `upstreams:
  shop.inventory.v1.InventoryService:
    addresses: ["127.0.0.1:9103"]
    pools: {canary: {addresses: ["dns:///inventory-canary:9103"]}}
    rules:
      - {pool: canary, header: {name: X-Canary, value: "1"}, fallback: default}
      - {pool: canary, methods: [GetItem], weight: 10}
`
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"routes", "-config", path}, &out, &errOut); err != nil {
		t.Fatalf("run: %v (%s)", err, errOut.String())
	}
	text := out.String()
	for _, want := range []string{
		"SERVICE", "POOL", "ADDRESSES", "MATCH", "FALLBACK",
		"default  127.0.0.1:9103", "canary   dns:///inventory-canary:9103",
		"header X-Canary=1", "weight 10% (sticky)", "GetItem", "the rest",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("routes output lacks %q:\n%s", want, text)
		}
	}
}

// waitRun waits up to timeout for the run a test started (its error on done) to return nil.
func waitRun(t *testing.T, done <-chan error, timeout time.Duration) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(timeout):
		t.Fatal("run did not stop")
	}
}
