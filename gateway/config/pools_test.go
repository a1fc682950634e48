package config_test

import (
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/config"
)

// TestUpstreamPools: pools and rules decode under an upstream, and every problem is reported
// at Parse, one line each, prefixed with where it is.
func TestUpstreamPools(t *testing.T) {
	const head = "upstreams:\n  a.B:\n"
	tests := []struct {
		name string
		yaml string
		want []string // fragments of the error; none: valid
	}{
		{"valid", `    addresses: ["dns:///b.ns.svc:9103"]
    pools: {canary: {addresses: ["10.0.0.1:1", "10.0.0.2:1"]}}
    rules:
      - {pool: canary, methods: [Get], header: {name: X-Canary, value: "1"}, fallback: default}
      - {pool: canary, subject: [alice]}
      - {pool: canary, claim: {name: tier, value: beta}}
      - {pool: canary, cidrs: ["10.0.0.0/8"]}
      - {pool: canary, weight: 12.5}
`, nil},
		{"every problem", `    addresses: ["a:1", "dns:///b:2"]
    pools: {default: {addresses: ["c:1"]}, canary: {addresses: []}}
    rules:
      - {pool: nope, weight: 10}
      - {pool: canary, weight: 101}
      - {pool: canary, cidrs: ["10.0.0.0/33"]}
      - {pool: canary, weight: 1, header: {name: X, value: "1"}}
      - {pool: canary, weight: 1, fallback: canary}
`, []string{
			`upstreams.a.B.addresses: "dns:///b:2": a dns:/// target stands alone in its list`,
			`upstreams.a.B.pools.canary.addresses: at least one address is required`,
			`upstreams.a.B.pools: "default" is reserved`,
			`upstreams.a.B.rules[0]: pool "nope" is not a pool of this upstream`,
			`upstreams.a.B.rules[1]: weight 101 is not within 0..100`,
			`upstreams.a.B.rules[2]: cidrs: "10.0.0.0/33" is not a prefix`,
			`upstreams.a.B.rules[3]: exactly one of weight, header, subject, claim, cidrs is required, got 2`,
			`upstreams.a.B.rules[4]: fallback "canary" is the rule's own pool`,
		}},
		{"unknown key", "    addresses: [\"a:1\"]\n    rules: [{pool: default, weigth: 1}]\n", []string{"weigth"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(head + tt.yaml))
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				u := cfg.Upstreams["a.B"]
				if len(u.Rules) != 5 || *u.Rules[4].Weight != 12.5 || u.Rules[0].Header.Name != "X-Canary" {
					t.Fatalf("decoded as %+v", u)
				}
				if got := u.Addrs(); len(got) != 2 || got["default"][0] != "dns:///b.ns.svc:9103" || len(got["canary"]) != 2 {
					t.Fatalf("Addrs = %v", got)
				}
				return
			}
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}
