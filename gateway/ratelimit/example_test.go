package ratelimit_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/ratelimit"
)

// The stage reads the route the router stored in the context; here a route allows 2 requests a
// minute per caller, and the third is refused with 429 before the handler runs.
func Example() {
	limiter, err := ratelimit.New(ratelimit.Config{}, ratelimit.Options{})
	if err != nil {
		panic(err)
	}
	defer limiter.Close()
	route := &policy.Route{RPC: "/shop.inventory.v1.InventoryService/GetItem",
		Policy: policy.Policy{RateLimit: policy.RateLimit{Requests: 2, Per: time.Minute, Burst: 2}}}
	handler := limiter.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusOK)
	}))
	for range 3 {
		req := httptest.NewRequest(http.MethodGet, "/v1/inventory/items/sku-1", nil)
		req = req.WithContext(policy.NewContext(req.Context(), route))
		w := httptest.NewRecorder()
		handler.ServeHTTP(w, req)
		fmt.Printf("%d %s %s retry-after=%q\n", w.Code, w.Header().Get("RateLimit-Policy"), w.Header().Get("RateLimit"), w.Header().Get("Retry-After"))
	}
	// Output:
	// 200  "default";r=1;t=30 retry-after=""
	// 200  "default";r=0;t=60 retry-after=""
	// 429 "default";q=2;w=60 "default";r=0;t=60 retry-after="30"
}
