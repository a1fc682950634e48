package sagatest

// Traffic pools end to end: the gateway binary in front of two inventoryd processes, "stable"
// (the default pool, a static address) and "canary" (a named pool reached through
// dns:///localhost:PORT), whose answers differ by the name of one item.

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/acme/shopgate/cmd/internal/proctest"
	"math"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/traffic"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/internal/devkey"
	"github.com/acme/shopgate/services/passport/passporttest"
)

const (
	inventoryService = "shop.inventory.v1.InventoryService"
	trafficSKU       = "sku-traffic"
)

// trafficRules is the upstream's rules section with the weight rule at weight percent and the
// header rule's fallback.
func trafficRules(weight int, fallback string) string {
	fb := ""
	if fallback != "" {
		fb = ", fallback: " + fallback
	}
	return fmt.Sprintf(`    rules:
      - {pool: canary, methods: [ListItems], header: {name: X-List-Canary, value: "1"}}
      - {pool: canary, header: {name: X-Canary, value: "1"}%s}
      - {pool: canary, subject: [carol]}
      - {pool: canary, claim: {name: tier, value: beta}}
      - {pool: canary, cidrs: ["10.20.0.0/16"]}
      - {pool: canary, weight: %d}
`, fb, weight)
}

func TestTrafficPools(t *testing.T) {
	b := ownBroker(t)
	bin := binaries(t)
	dir := t.TempDir()
	s := &stack{t: t, broker: b, jwks: passporttest.WriteJWKS(t)}
	newInventory := func(name string) *proc {
		return &proc{t: t, name: "inventoryd", bin: bin, addr: freeAddr(t), log: filepath.Join(dir, name+".log"),
			args: append([]string{"-data", filepath.Join(dir, name), "-passport-jwks", s.jwks}, b.flags...)}
	}
	stable, canary := newInventory("stable"), newInventory("canary")
	t.Cleanup(func() {
		for _, p := range []*proc{stable, canary} {
			p.kill()
			if t.Failed() {
				t.Logf("--- %s log:\n%s", p.log, proctest.Tail(proctest.WithoutPolls(p.logs()), 40))
			}
		}
	})
	for _, p := range []*proc{stable, canary} {
		p.start()
	}
	for p, name := range map[*proc]string{stable: "stable v1", canary: "canary v2"} {
		inv := inventoryv1.NewInventoryServiceClient(dial(t, p.addr))
		_, err := inv.UpsertItem(as(ctxTimeout(t, 5*time.Second), "ops", "admin"), &inventoryv1.UpsertItemRequest{
			Item: &inventoryv1.Item{Sku: trafficSKU, Name: name, PriceCents: 100, Currency: "USD", Available: 1}})
		if err != nil {
			t.Fatalf("upserting into %s: %v", name, err)
		}
	}
	_, canaryPort, _ := net.SplitHostPort(canary.addr)
	upstreams := fmt.Sprintf("  %s:\n    addresses: [%q]\n    pools:\n      canary: {addresses: [\"dns:///localhost:%s\"]}\n",
		inventoryService, stable.addr, canaryPort)
	extra := `client_ip: {trusted_proxies: ["127.0.0.1/32"]}
routes:
  shop.inventory.v1.InventoryService: {auth: optional, rate_limit: {requests: 100000, per: 60s}}
`
	rules := trafficRules(30, "")
	g := startGateway(t, s, gatewayOptions{upstreams: upstreams + rules, extra: extra})

	// pool is the pool that served one GET of the item: "default" or "canary" by its name, or
	// the HTTP status when it was not 200.
	pool := func(token string, hdr map[string]string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		status, body, err := g.do(ctx, "GET", "/v1/inventory/items/"+trafficSKU, token, hdr, "")
		if err != nil {
			return err.Error()
		}
		if status != 200 {
			return fmt.Sprint(status)
		}
		var it struct{ Name string }
		if err := json.Unmarshal(body, &it); err != nil {
			return string(body)
		}
		switch it.Name {
		case "stable v1":
			return traffic.DefaultPool
		case "canary v2":
			return "canary"
		}
		return it.Name
	}
	tokens := make([]string, 1000)
	for i := range tokens {
		tokens[i] = g.token(fmt.Sprintf("user-%d", i))
	}
	// share is the percentage of the 1,000 callers (one call each) served by the canary.
	share := func() float64 {
		var mu sync.Mutex
		var wg sync.WaitGroup
		n, odd := 0, []string{}
		next := make(chan string)
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for tok := range next {
					p := pool(tok, nil)
					mu.Lock()
					switch p {
					case "canary":
						n++
					case traffic.DefaultPool:
					default:
						odd = append(odd, p)
					}
					mu.Unlock()
				}
			}()
		}
		for _, tok := range tokens {
			next <- tok
		}
		close(next)
		wg.Wait()
		if len(odd) > 0 {
			t.Fatalf("%d calls failed, e.g. %q", len(odd), odd[0])
		}
		return float64(n) / 10
	}
	// 1,000 callers at 30%: the binomial standard deviation is 1.45 points; ±5 points is 3.4 of
	// them (a false failure about once in 1,500 runs, and the hash is fixed: the same callers
	// land the same way every run).
	const tolerance = 5
	if got := share(); math.Abs(got-30) > tolerance {
		t.Fatalf("weight 30: %.1f%% of 1000 callers on the canary", got)
	}

	mover, stayer := "", "" // a caller that moves at 70%, and one that stays on stable
	for i := range tokens {
		switch b := traffic.Bucket(inventoryService, fmt.Sprintf("user-%d", i)); {
		case b >= 30 && b < 70 && mover == "":
			mover = tokens[i]
		case b >= 70 && stayer == "":
			stayer = tokens[i]
		}
	}
	t.Run("sticky", func(t *testing.T) {
		for _, sub := range []string{"user-1", "user-2", "user-3"} {
			tok := g.token(sub)
			first := pool(tok, nil)
			for range 50 {
				if p := pool(tok, nil); p != first {
					t.Fatalf("%s served by %s, then by %s", sub, first, p)
				}
			}
		}
	})
	t.Run("header", func(t *testing.T) {
		if p := pool("", map[string]string{"X-Canary": "1"}); p != "canary" {
			t.Errorf("X-Canary: 1 served by %s", p)
		}
		if p := pool("", map[string]string{"X-Canary": "0"}); p != traffic.DefaultPool {
			t.Errorf("X-Canary: 0 served by %s", p)
		}
		// A per-RPC rule: X-List-Canary only moves ListItems.
		if p := pool("", map[string]string{"X-List-Canary": "1"}); p != traffic.DefaultPool {
			t.Errorf("X-List-Canary on GetItem served by %s", p)
		}
	})
	t.Run("subject and claim", func(t *testing.T) {
		if p := pool(g.token("carol"), nil); p != "canary" {
			t.Errorf("carol served by %s", p)
		}
		beta, err := g.key.Mint(devkey.Claims{Subject: "dave", Extra: map[string]string{"tier": "beta"}})
		if err != nil {
			t.Fatal(err)
		}
		gold, err := g.key.Mint(devkey.Claims{Subject: "dave", Extra: map[string]string{"tier": "gold"}})
		if err != nil {
			t.Fatal(err)
		}
		if traffic.Bucket(inventoryService, "dave") < 30 {
			t.Fatal("dave is in the weighted share: pick another subject")
		}
		if p := pool(beta, nil); p != "canary" {
			t.Errorf("tier beta served by %s", p)
		}
		if p := pool(gold, nil); p != traffic.DefaultPool {
			t.Errorf("tier gold served by %s", p)
		}
	})
	t.Run("cidr", func(t *testing.T) {
		// 127.0.0.1 is a trusted proxy: the client is the address it names.
		if p := pool("", map[string]string{"X-Forwarded-For": "10.20.3.4"}); p != "canary" {
			t.Errorf("10.20.3.4 served by %s", p)
		}
		// An address outside the rule is left to the weight rule (anonymous callers are
		// weighted by address): with a token of a caller outside the share, stable serves it.
		if p := pool(stayer, map[string]string{"X-Forwarded-For": "10.21.3.4"}); p != traffic.DefaultPool {
			t.Errorf("10.21.3.4 outside the weighted share served by %s", p)
		}
	})
	t.Run("access log and metrics", func(t *testing.T) {
		eventually(t, 5*time.Second, "access log lines with the pool", func() bool {
			logs := g.p.logs()
			return strings.Contains(logs, `"pool":"canary"`) && strings.Contains(logs, `"pool":"default"`)
		})
		n, err := scrapeCounter(g.p.addr, "gateway_upstream_pool_requests_total", map[string]string{"service": inventoryService, "pool": "canary"})
		if err != nil || n < 250 {
			t.Errorf("canary pool counter = %v, %v; want at least the weighted share's calls", n, err)
		}
	})

	// reload rewrites the rules and sends SIGHUP; done says when the new rules serve.
	reload := func(next string, done func() bool) {
		t.Helper()
		g.head = strings.Replace(g.head, upstreams+rules, upstreams+next, 1)
		rules = next
		cfg := g.head + extra
		if err := os.WriteFile(g.cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		g.p.send(syscall.SIGHUP)
		eventually(t, 10*time.Second, "the reloaded rules", done)
	}
	// A caller between 30 and 70 moves to the canary when the weight rises; every caller of the
	// canary at 30% stays there.
	at30 := map[string]bool{}
	for i, tok := range tokens[:200] {
		at30[tok] = traffic.Bucket(inventoryService, fmt.Sprintf("user-%d", i)) < 30
	}
	reload(trafficRules(70, ""), func() bool { return pool(mover, nil) == "canary" })
	if got := share(); math.Abs(got-70) > tolerance {
		t.Fatalf("weight 70 after reload: %.1f%% of 1000 callers on the canary", got)
	}
	for tok, was := range at30 {
		if was && pool(tok, nil) != "canary" {
			t.Fatal("a caller of the canary at 30% left it at 70%")
		}
	}

	// A dead canary: without a fallback its calls answer 503; with one, stable serves them.
	canary.kill()
	eventually(t, 10*time.Second, "503 from the dead canary", func() bool {
		return pool("", map[string]string{"X-Canary": "1"}) == "503"
	})
	if p := pool(stayer, nil); p != traffic.DefaultPool {
		t.Fatalf("a caller of the default pool while the canary is dead: %s", p)
	}
	reload(trafficRules(70, traffic.DefaultPool), func() bool {
		return pool("", map[string]string{"X-Canary": "1"}) == traffic.DefaultPool
	})
	if p := pool("", map[string]string{"X-Canary": "1", "X-Request-Id": "fallback-call"}); p != traffic.DefaultPool {
		t.Fatalf("X-Canary: 1 with the fallback: %s", p)
	}
	eventually(t, 5*time.Second, "the fallback's access log line", func() bool {
		for _, l := range strings.Split(g.p.logs(), "\n") {
			if strings.Contains(l, `"request_id":"fallback-call"`) {
				return strings.Contains(l, `"pool":"default"`)
			}
		}
		return false
	})
	if status, body := g.readyz(); status != 200 || !strings.Contains(body, `"pools"`) {
		t.Errorf("/readyz with a dead canary: %d %s; want 200 with the pools' counts", status, body)
	}
}
