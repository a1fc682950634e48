package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestAbuseBlocksAnAddress: more than 30 failed authentications within a minute from one client
// address (named by a trusted proxy) block it with 429 and Retry-After on every route, public
// ones included, while other addresses pass; a reload keeps the block; an admin lists it and
// lifts it at /admin/abuse/blocks, which nobody else may use.
func TestAbuseBlocksAnAddress(t *testing.T) {
	be := startBackend(t)
	yaml := baseYAML(be.addr, "client_ip: {trusted_proxies: [127.0.0.0/8]}\n")
	g := startGateway(t, yaml, Options{})
	g.waitReady(t)
	from := func(addr string, h http.Header) http.Header {
		if h == nil {
			h = http.Header{}
		}
		h.Set("X-Forwarded-For", addr)
		return h
	}
	const attacker, other = "203.0.113.5", "198.51.100.7"
	bad := http.Header{"X-Api-Key": {"not-a-key-0123456789"}}
	for i := 1; i <= 31; i++ {
		if r := do(t, nil, "GET", g.url+"/v1/orders", nil, from(attacker, bad.Clone())); r.status != http.StatusUnauthorized {
			t.Fatalf("bad key %d: %d %s, want 401", i, r.status, r.body)
		}
	}
	blocked := func(t *testing.T) {
		t.Helper()
		r := do(t, nil, "GET", g.url+"/v1/inventory/items/sku-1", nil, from(attacker, nil))
		if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" || r.header.Get("X-Request-Id") == "" {
			t.Fatalf("blocked address on a public route: %d (Retry-After %q) %s", r.status, r.header.Get("Retry-After"), r.body)
		}
		if code, _, _ := r.rpcStatus(t); code != 8 {
			t.Errorf("code %d, want RESOURCE_EXHAUSTED", code)
		}
	}
	blocked(t)
	if r := do(t, nil, "GET", g.url+"/v1/inventory/items/sku-1", nil, from(other, nil)); r.status != http.StatusOK {
		t.Fatalf("another address: %d %s", r.status, r.body)
	}
	if err := g.Reload(parse(t, yaml)); err != nil {
		t.Fatal(err)
	}
	blocked(t)

	admin := func() http.Header { return from(other, http.Header{"X-Api-Key": {adminKey}}) }
	if r := do(t, nil, "GET", g.url+PathAbuseBlocks, nil, from(other, http.Header{"X-Api-Key": {customerKey}})); r.status != http.StatusForbidden {
		t.Fatalf("a customer lists the blocks: %d %s, want 403", r.status, r.body)
	}
	r := do(t, nil, "GET", g.url+PathAbuseBlocks, nil, admin())
	if r.status != http.StatusOK || !strings.Contains(string(r.body), attacker) || !json.Valid(r.body) {
		t.Fatalf("an admin lists the blocks: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "DELETE", g.url+PathAbuseBlocks+"?addr="+attacker, nil, admin()); r.status/100 != 2 {
		t.Fatalf("an admin lifts the block: %d %s", r.status, r.body)
	}
	if r := do(t, nil, "GET", g.url+"/v1/inventory/items/sku-1", nil, from(attacker, nil)); r.status != http.StatusOK {
		t.Fatalf("after the lift: %d %s", r.status, r.body)
	}
}
