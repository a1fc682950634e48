package retry_test

import (
	"fmt"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/retry"
	"github.com/acme/shopgate/gateway/upstream"
)

// Apply feeds the upstream connections' service config: GetItem is idempotent and retried,
// UpsertItem is not and gets no retry policy.
func ExampleApply() {
	routes := []policy.Route{
		{RPC: "/shop.inventory.v1.InventoryService/GetItem", Policy: policy.Policy{Idempotent: true}},
		{RPC: "/shop.inventory.v1.InventoryService/UpsertItem"},
	}
	var opts upstream.Options
	if err := retry.Apply(routes, retry.Config{}, &opts); err != nil {
		panic(err)
	}
	sc, _ := upstream.ServiceConfig{MethodConfig: opts.MethodConfigs, RetryThrottling: opts.RetryThrottling}.JSON()
	fmt.Println(sc)
	// Output:
	// {"loadBalancingConfig":null,"methodConfig":[{"name":[{"service":"shop.inventory.v1.InventoryService","method":"GetItem"}],"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}],"retryThrottling":{"maxTokens":10,"tokenRatio":0.1}}
}
