package traffic_test

import (
	"fmt"
	"math"
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/traffic"
)

const svc = "shop.inventory.v1.InventoryService"

func weight(w float64) *float64 { return &w }

var pools = map[string]traffic.Pool{"canary": {Addresses: []string{"127.0.0.1:2"}}, "beta": {Addresses: []string{"dns:///beta:1"}}}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  traffic.Config
		want string // "" for valid; else a fragment of the error
	}{
		{"none", traffic.Config{}, ""},
		{"weight", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Weight: weight(30), Fallback: traffic.DefaultPool}}}, ""},
		{"to default", traffic.Config{Rules: []traffic.Rule{{Pool: "default", Header: &traffic.HeaderMatch{Name: "X-Stable"}}}}, ""},
		{"unknown pool", traffic.Config{Rules: []traffic.Rule{{Pool: "canary", Weight: weight(1)}}}, `pool "canary" is not a pool`},
		{"no pool", traffic.Config{Rules: []traffic.Rule{{Weight: weight(1)}}}, "pool is required"},
		{"two matchers", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Weight: weight(1), Subjects: []string{"a"}}}}, "exactly one of"},
		{"no matcher", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary"}}}, "exactly one of"},
		{"weight over", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Weight: weight(100.5)}}}, "not within 0..100"},
		{"weight under", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Weight: weight(-1)}}}, "not within 0..100"},
		{"weight NaN", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Weight: weight(math.NaN())}}}, "not within 0..100"},
		{"bad cidr", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", CIDRs: []string{"10.0.0.0/33"}}}}, "not a prefix"},
		{"empty cidrs", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", CIDRs: []string{}}}}, "at least one prefix"},
		{"fallback to itself", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Weight: weight(1), Fallback: "canary"}}}, "the rule's own pool"},
		{"fallback unknown", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Weight: weight(1), Fallback: "gamma"}}}, `fallback "gamma"`},
		{"header without name", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Header: &traffic.HeaderMatch{}}}}, "header: name is required"},
		{"claim without name", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Claim: &traffic.ClaimMatch{}}}}, "claim: name is required"},
		{"bad method", traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Methods: []string{"/x.Y/Get"}, Weight: weight(1)}}}, "short name"},
		{"pool named default", traffic.Config{Pools: map[string]traffic.Pool{"default": {Addresses: []string{"a:1"}}}}, "reserved"},
		{"pool without addresses", traffic.Config{Pools: map[string]traffic.Pool{"canary": {}}}, "at least one address"},
		{"dns among others", traffic.Config{Pools: map[string]traffic.Pool{"canary": {Addresses: []string{"a:1", "dns:///b:2"}}}}, "stands alone"},
		{"dns without port", traffic.Config{Pools: map[string]traffic.Pool{"canary": {Addresses: []string{"dns:///b"}}}}, "not host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestChoose(t *testing.T) {
	alice := &identity.Identity{Subject: "alice", Claims: map[string]string{"tier": "beta", "n": "3"}}
	bob := &identity.Identity{Subject: "bob"}
	hdr := http.Header{"X-Canary": {"1"}}
	cfg := traffic.Config{Pools: pools, Rules: []traffic.Rule{
		{Pool: "beta", Methods: []string{"ListItems"}, Header: &traffic.HeaderMatch{Name: "x-canary", Value: "1"}},
		{Pool: "canary", Header: &traffic.HeaderMatch{Name: "x-canary", Value: "1"}, Fallback: "default"},
		{Pool: "beta", Claim: &traffic.ClaimMatch{Name: "tier", Value: "beta"}},
		{Pool: "canary", Subjects: []string{"bob"}},
		{Pool: "canary", CIDRs: []string{"10.1.0.0/16", "2001:db8::/32"}},
	}}
	sel, err := traffic.New(svc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ip := func(s string) func() netip.Addr { return func() netip.Addr { return netip.MustParseAddr(s) } }
	tests := []struct {
		name string
		req  traffic.Request
		want traffic.Choice
	}{
		{"nothing", traffic.Request{Method: "GetItem", ClientIP: ip("127.0.0.1")}, traffic.Choice{Pool: "default"}},
		{"header, per-RPC rule first", traffic.Request{Method: "ListItems", Header: hdr}, traffic.Choice{Pool: "beta"}},
		{"header, other RPC", traffic.Request{Method: "GetItem", Header: hdr}, traffic.Choice{Pool: "canary", Fallback: "default"}},
		{"header wrong value", traffic.Request{Method: "GetItem", Header: http.Header{"X-Canary": {"2"}}, ClientIP: ip("127.0.0.1")}, traffic.Choice{Pool: "default"}},
		{"claim", traffic.Request{Method: "GetItem", Identity: alice}, traffic.Choice{Pool: "beta"}},
		{"subject", traffic.Request{Method: "GetItem", Identity: bob}, traffic.Choice{Pool: "canary"}},
		{"anonymous has no subject", traffic.Request{Method: "GetItem", Identity: &identity.Identity{}, ClientIP: ip("127.0.0.1")}, traffic.Choice{Pool: "default"}},
		{"cidr v4", traffic.Request{Method: "GetItem", ClientIP: ip("10.1.2.3")}, traffic.Choice{Pool: "canary"}},
		{"cidr v4-mapped", traffic.Request{Method: "GetItem", ClientIP: ip("::ffff:10.1.2.3")}, traffic.Choice{Pool: "canary"}},
		{"cidr v6", traffic.Request{Method: "GetItem", ClientIP: ip("2001:db8::1")}, traffic.Choice{Pool: "canary"}},
		{"cidr outside", traffic.Request{Method: "GetItem", ClientIP: ip("10.2.0.1")}, traffic.Choice{Pool: "default"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sel.Choose(tt.req); got != tt.want {
				t.Fatalf("Choose = %+v, want %+v", got, tt.want)
			}
		})
	}
	var none *traffic.Selector
	if got := none.Choose(traffic.Request{}); got != (traffic.Choice{Pool: traffic.DefaultPool}) {
		t.Fatalf("nil Selector chose %+v", got)
	}
	if s, err := traffic.New(svc, traffic.Config{Pools: pools}); s != nil || err != nil {
		t.Fatalf("New without rules = %v, %v; want nil, nil", s, err)
	}
}

// TestWeight checks the share of 10,000 callers within 2 points (the binomial standard
// deviation at 30% is 0.46 points), that a caller's pool never changes, and that raising the
// weight only adds callers.
func TestWeight(t *testing.T) {
	share := func(w float64) (int, map[string]string) {
		sel, err := traffic.New(svc, traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Weight: weight(w)}}})
		if err != nil {
			t.Fatal(err)
		}
		n, got := 0, map[string]string{}
		for i := range 10000 {
			id := &identity.Identity{Subject: fmt.Sprintf("user-%d", i)}
			c := sel.Choose(traffic.Request{Identity: id})
			for range 3 {
				if again := sel.Choose(traffic.Request{Identity: id}); again != c {
					t.Fatalf("user-%d: %s then %s", i, c.Pool, again.Pool)
				}
			}
			if c.Pool == "canary" {
				n++
			}
			got[id.Subject] = c.Pool
		}
		return n, got
	}
	for _, w := range []float64{0, 1, 30, 70, 100} {
		n, _ := share(w)
		if math.Abs(float64(n)/100-w) > 2 {
			t.Errorf("weight %v: %d of 10000 callers in the pool", w, n)
		}
	}
	_, at30 := share(30)
	_, at70 := share(70)
	for sub, p := range at30 {
		if p == "canary" && at70[sub] != "canary" {
			t.Fatalf("%s left the pool when its weight rose", sub)
		}
	}
	// Anonymous callers are spread by their address, as stickily.
	sel, _ := traffic.New(svc, traffic.Config{Pools: pools, Rules: []traffic.Rule{{Pool: "canary", Weight: weight(50)}}})
	n := 0
	for i := range 4096 {
		a := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		if sel.Choose(traffic.Request{ClientIP: func() netip.Addr { return a }}).Pool == "canary" {
			n++
		}
	}
	if n < 1800 || n > 2300 {
		t.Errorf("weight 50: %d of 4096 anonymous addresses in the pool", n)
	}
	if b := traffic.Bucket(svc, "alice"); b < 0 || b >= 100 {
		t.Errorf("Bucket = %v", b)
	}
}

func BenchmarkChoose(b *testing.B) {
	sel, _ := traffic.New(svc, traffic.Config{Pools: pools, Rules: []traffic.Rule{
		{Pool: "canary", Header: &traffic.HeaderMatch{Name: "X-Canary", Value: "1"}},
		{Pool: "canary", Weight: weight(30)},
	}})
	id := &identity.Identity{Subject: "alice"}
	hdr := http.Header{}
	b.ReportAllocs()
	for b.Loop() {
		sel.Choose(traffic.Request{Method: "GetItem", Header: hdr, Identity: id})
	}
}
