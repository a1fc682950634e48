package server

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/httpcache"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/internal/testclock"
	"github.com/acme/shopgate/internal/testredis"
)

// CancelOrder lets the cache tests write through the gateway (POST /v1/orders/{id}:cancel).
func (u *backend) CancelOrder(ctx context.Context, req *orderv1.CancelOrderRequest) (*orderv1.Order, error) {
	if err := u.record(ctx, "CancelOrder"); err != nil {
		return nil, err
	}
	return &orderv1.Order{Id: req.GetId(), Status: orderv1.OrderStatus_ORDER_STATUS_CANCELLED}, nil
}

func with(h http.Header, kv ...string) http.Header {
	h = h.Clone()
	if h == nil {
		h = http.Header{}
	}
	for i := 0; i < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

// TestETagAndConditionalGET: every 200 answer of a GET route carries a strong ETag and the
// Cache-Control of its kind of route; If-None-Match with a matching tag (exact, weak, in a
// list, "*") answers 304 with no body, keeping ETag, Cache-Control and X-Request-Id; errors
// carry neither, and no route is cached by default (no X-Cache).
func TestETagAndConditionalGET(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, `routes:
  shop.inventory.v1.InventoryService/ListItems: {cache: {max_age: 60s}}
`), Options{Logger: discardLogger()})
	routes := []struct {
		name, path   string
		header       http.Header
		cacheControl string
	}{
		{"authenticated", "/v1/orders/o-1", customer(), httpcache.Private},
		{"public, default max-age", "/v1/inventory/items/sku-1", nil, httpcache.PublicRevalidate},
		{"public, max_age 60s", "/v1/inventory/items", nil, "public, max-age=60"},
	}
	for _, rt := range routes {
		t.Run(rt.name, func(t *testing.T) {
			first := do(t, nil, http.MethodGet, gw.url+rt.path, nil, rt.header)
			etag := first.header.Get("ETag")
			if first.status != http.StatusOK || len(etag) != 18 || !strings.HasPrefix(etag, `"`) {
				t.Fatalf("%d, ETag %q: want 200 with a strong tag", first.status, etag)
			}
			if cc := first.header.Get("Cache-Control"); cc != rt.cacheControl {
				t.Errorf("Cache-Control = %q, want %q", cc, rt.cacheControl)
			}
			if first.header.Get(httpcache.HeaderXCache) != "" {
				t.Error("X-Cache on a route without a cache")
			}
			if again := do(t, nil, http.MethodGet, gw.url+rt.path, nil, rt.header); again.header.Get("ETag") != etag {
				t.Errorf("the same answer got another tag: %s, %s", etag, again.header.Get("ETag"))
			}
			conditions := []struct {
				inm  string
				want int
			}{
				{etag, http.StatusNotModified},
				{"W/" + etag, http.StatusNotModified},
				{`"nope", ` + etag, http.StatusNotModified},
				{"*", http.StatusNotModified},
				{`"nope"`, http.StatusOK},
				{strings.Trim(etag, `"`), http.StatusOK},
			}
			for _, c := range conditions {
				r := do(t, nil, http.MethodGet, gw.url+rt.path, nil, with(rt.header, "If-None-Match", c.inm, "X-Request-Id", "req-cond-1"))
				if r.status != c.want {
					t.Errorf("If-None-Match %s: %d, want %d", c.inm, r.status, c.want)
					continue
				}
				if r.header.Get("ETag") != etag || r.header.Get("Cache-Control") != rt.cacheControl || r.header.Get("X-Request-Id") != "req-cond-1" {
					t.Errorf("If-None-Match %s: headers %v", c.inm, r.header)
				}
				if c.want == http.StatusNotModified && len(r.body) != 0 {
					t.Errorf("a 304 with a body: %q", r.body)
				}
				if c.want == http.StatusOK && string(r.body) != string(first.body) {
					t.Errorf("If-None-Match %s: body %q, want %q", c.inm, r.body, first.body)
				}
			}
		})
	}
	t.Run("errors carry no tag", func(t *testing.T) {
		r := do(t, nil, http.MethodGet, gw.url+"/v1/orders/o-1", nil, nil) // no credential: 401
		if r.status != http.StatusUnauthorized || r.header.Get("ETag") != "" {
			t.Errorf("%d with ETag %q: want 401 without", r.status, r.header.Get("ETag"))
		}
	})
}

// cacheYAML puts GetOrder, GetItem and ListItems in the response cache for 5s, GetOrder with a
// rate limit of 4 per hour, and WatchOrder "cached" too (streams never are).
const cacheYAML = `routes:
  shop.order.v1.OrderService/GetOrder: {cache: {ttl: 5s}, rate_limit: {requests: 5, per: 1h}}
  shop.order.v1.OrderService/WatchOrder: {cache: {ttl: 5s}}
  shop.inventory.v1.InventoryService/GetItem: {cache: {ttl: 5s}}
  shop.inventory.v1.InventoryService/ListItems: {cache: {ttl: 5s}}
`

func cacheGateway(t *testing.T, be *backend, extra string, clock *testclock.Clock) *gateway {
	t.Helper()
	return startGateway(t, streamsYAML(be.addr, cacheYAML+extra), Options{Logger: discardLogger(), cacheNow: clock.Now})
}

// expect runs a GET and checks its status and X-Cache, and that the upstream saw calls more
// calls of method.
func expect(t *testing.T, be *backend, url, path string, h http.Header, method string, status int, xcache string, calls int) reply {
	t.Helper()
	before := be.callsOf(method)
	r := do(t, nil, http.MethodGet, url+path, nil, h)
	if r.status != status || r.header.Get(httpcache.HeaderXCache) != xcache {
		t.Fatalf("GET %s: %d X-Cache %q, want %d %q (%s)", path, r.status, r.header.Get(httpcache.HeaderXCache), status, xcache, r.body)
	}
	if got := be.callsOf(method) - before; got != calls {
		t.Fatalf("GET %s: the upstream saw %d calls, want %d", path, got, calls)
	}
	return r
}

// TestResponseCache: a route with a cache TTL answers from the gateway's cache until the TTL
// passes (the test moves the clock), with X-Cache and Age, per caller on an authenticated
// route and shared on a public one, keyed by the query; a hit still costs rate-limit quota; a
// request's Cache-Control: no-cache refreshes it; a write to the resource invalidates it; a
// stream is never cached.
func TestResponseCache(t *testing.T) {
	be := startBackend(t)
	clock := testclock.New()
	gw := cacheGateway(t, be, "", clock)
	alice, bob := customer(), http.Header{"X-Api-Key": {bobKey}}

	miss := expect(t, be, gw.url, "/v1/orders/o-1", alice, "GetOrder", 200, "MISS", 1)
	hit := expect(t, be, gw.url, "/v1/orders/o-1", alice, "GetOrder", 200, "HIT", 0)
	if string(hit.body) != string(miss.body) || hit.header.Get("ETag") != miss.header.Get("ETag") || hit.header.Get("Content-Type") != "application/json" {
		t.Errorf("the hit differs from the miss: %q %v / %q %v", hit.body, hit.header, miss.body, miss.header)
	}
	if hit.header.Get("Age") != "0" || hit.header.Get("Cache-Control") != httpcache.Private {
		t.Errorf("hit: Age %q Cache-Control %q", hit.header.Get("Age"), hit.header.Get("Cache-Control"))
	}
	clock.Advance(3 * time.Second)
	if r := expect(t, be, gw.url, "/v1/orders/o-1", with(alice, "If-None-Match", miss.header.Get("ETag")), "GetOrder", 304, "HIT", 0); r.header.Get("Age") != "3" || len(r.body) != 0 {
		t.Errorf("conditional hit: Age %q, body %q", r.header.Get("Age"), r.body)
	}
	expect(t, be, gw.url, "/v1/orders/o-1", bob, "GetOrder", 200, "MISS", 1) // another caller
	clock.Advance(2 * time.Second)                                           // alice's answer is 5s old: expired
	expect(t, be, gw.url, "/v1/orders/o-1", alice, "GetOrder", 200, "MISS", 1)
	expect(t, be, gw.url, "/v1/orders/o-1", alice, "GetOrder", 200, "HIT", 0) // alice's 5th
	if r := do(t, nil, http.MethodGet, gw.url+"/v1/orders/o-1", nil, alice); r.status != http.StatusTooManyRequests {
		t.Errorf("alice's 6th GetOrder (a hit): %d, want 429: a hit costs quota", r.status)
	}

	t.Run("public routes share, queries do not", func(t *testing.T) {
		expect(t, be, gw.url, "/v1/inventory/items/sku-1", nil, "GetItem", 200, "MISS", 1)
		expect(t, be, gw.url, "/v1/inventory/items/sku-1", alice, "GetItem", 200, "HIT", 0)
		expect(t, be, gw.url, "/v1/inventory/items?page_size=2&page_token=a", nil, "ListItems", 200, "MISS", 1)
		expect(t, be, gw.url, "/v1/inventory/items?page_token=a&page_size=2", nil, "ListItems", 200, "HIT", 0)
		expect(t, be, gw.url, "/v1/inventory/items?page_size=3", nil, "ListItems", 200, "MISS", 1)
	})
	t.Run("request cache-control", func(t *testing.T) {
		expect(t, be, gw.url, "/v1/inventory/items/sku-2", nil, "GetItem", 200, "MISS", 1)
		expect(t, be, gw.url, "/v1/inventory/items/sku-2", http.Header{"Cache-Control": {"no-cache"}}, "GetItem", 200, "MISS", 1)
		expect(t, be, gw.url, "/v1/inventory/items/sku-2", nil, "GetItem", 200, "HIT", 0)
		expect(t, be, gw.url, "/v1/inventory/items/sku-3", http.Header{"Cache-Control": {"no-store"}}, "GetItem", 200, "MISS", 1)
		expect(t, be, gw.url, "/v1/inventory/items/sku-3", nil, "GetItem", 200, "MISS", 1) // not stored
	})
	t.Run("only 200s are stored", func(t *testing.T) {
		be.setBehave(func(_ context.Context, method string) error {
			if method == "GetItem" {
				return status.Error(codes.NotFound, "no such item")
			}
			return nil
		})
		defer be.setBehave(nil)
		for range 2 {
			expect(t, be, gw.url, "/v1/inventory/items/gone", nil, "GetItem", 404, "MISS", 1)
		}
	})
	t.Run("a write invalidates its resource", func(t *testing.T) {
		root := http.Header{"X-Api-Key": {adminKey}}
		expect(t, be, gw.url, "/v1/orders/o-2", root, "GetOrder", 200, "MISS", 1)
		expect(t, be, gw.url, "/v1/orders/o-3", root, "GetOrder", 200, "MISS", 1)
		expect(t, be, gw.url, "/v1/orders/o-2", root, "GetOrder", 200, "HIT", 0)
		if r := do(t, nil, http.MethodPost, gw.url+"/v1/orders/o-2:cancel", jsonBody(`{}`), root); r.status != http.StatusOK {
			t.Fatalf("cancel: %d %s", r.status, r.body)
		}
		expect(t, be, gw.url, "/v1/orders/o-2", root, "GetOrder", 200, "MISS", 1)
		expect(t, be, gw.url, "/v1/orders/o-3", root, "GetOrder", 200, "HIT", 0) // another resource
	})
	t.Run("streams are never cached", func(t *testing.T) {
		holdWatches(be)
		for range 2 {
			resp := startWatch(t, gw, "")
			if resp.StatusCode != http.StatusOK || resp.Header.Get(httpcache.HeaderXCache) != "" || resp.Header.Get("ETag") != "" {
				t.Fatalf("watch: %d %v", resp.StatusCode, resp.Header)
			}
			_ = resp.Body.Close()
		}
		if n := be.callsOf("WatchOrder"); n != 2 {
			t.Errorf("the upstream saw %d watches, want 2", n)
		}
	})
}

// TestResponseCacheMemoryBound: the memory backend keeps at most response_cache.max_entries
// answers, evicting the least recently used.
func TestResponseCacheMemoryBound(t *testing.T) {
	be := startBackend(t)
	clock := testclock.New()
	gw := cacheGateway(t, be, "response_cache: {max_entries: 2}\n", clock)
	for _, sku := range []string{"a", "b", "c"} {
		expect(t, be, gw.url, "/v1/inventory/items/"+sku, nil, "GetItem", 200, "MISS", 1)
	}
	expect(t, be, gw.url, "/v1/inventory/items/c", nil, "GetItem", 200, "HIT", 0)
	expect(t, be, gw.url, "/v1/inventory/items/b", nil, "GetItem", 200, "HIT", 0)
	expect(t, be, gw.url, "/v1/inventory/items/a", nil, "GetItem", 200, "MISS", 1) // evicted
}

// TestResponseCacheRedis: two gateways on one Redis share answers, a write through one
// invalidates the other's, and with Redis down every request is served uncached.
func TestResponseCacheRedis(t *testing.T) {
	addr := testredis.Need(t)
	t.Run("shared by two gateways", func(t *testing.T) {
		be := startBackend(t)
		clock := testclock.New()
		extra := "response_cache: {backend: redis, redis: {addr: \"" + addr + "\", key_prefix: \"" + testredis.Prefix(t, "cache") + "\", timeout: 1s}}\n"
		a, b := cacheGateway(t, be, extra, clock), cacheGateway(t, be, extra, clock)
		expect(t, be, a.url, "/v1/orders/o-1", customer(), "GetOrder", 200, "MISS", 1)
		expect(t, be, b.url, "/v1/orders/o-1", customer(), "GetOrder", 200, "HIT", 0)
		if r := do(t, nil, http.MethodPost, b.url+"/v1/orders/o-1:cancel", jsonBody(`{}`), customer()); r.status != http.StatusOK {
			t.Fatalf("cancel: %d %s", r.status, r.body)
		}
		expect(t, be, a.url, "/v1/orders/o-1", customer(), "GetOrder", 200, "MISS", 1)
		expect(t, be, b.url, "/v1/orders/o-1", customer(), "GetOrder", 200, "HIT", 0)
		clock.Advance(5 * time.Second)
		expect(t, be, b.url, "/v1/orders/o-1", customer(), "GetOrder", 200, "MISS", 1)
	})
	t.Run("redis down", func(t *testing.T) {
		be := startBackend(t)
		clock := testclock.New()
		gw := cacheGateway(t, be, "response_cache: {backend: redis, redis: {addr: \""+deadAddr(t)+"\"}}\n", clock)
		for range 3 {
			expect(t, be, gw.url, "/v1/orders/o-1", customer(), "GetOrder", 200, "MISS", 1)
			clock.Advance(2 * time.Second) // past the pause after a failure: Redis is asked again
		}
		if r := do(t, nil, http.MethodPost, gw.url+"/v1/orders/o-1:cancel", jsonBody(`{}`), customer()); r.status != http.StatusOK {
			t.Fatalf("a write with Redis down: %d %s", r.status, r.body)
		}
	})
}
