package retry_test

import (
	"fmt"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/retry"
	"github.com/acme/shopgate/gateway/upstream"
)

// The retry stage feeds the upstream connections' service config: GetItem is idempotent and
// retried, UpsertItem is not and gets no retry policy.
func ExampleStage() {
	routes := []*policy.Route{
		{RPC: "/shop.inventory.v1.InventoryService/GetItem", Policy: policy.Policy{Idempotent: true}},
		{RPC: "/shop.inventory.v1.InventoryService/UpsertItem"},
	}
	stage, err := retry.New(retry.Config{})
	if err != nil {
		panic(err)
	}
	mcs, err := stage.MethodConfigs(routes)
	if err != nil {
		panic(err)
	}
	sc, _ := upstream.ServiceConfig{MethodConfig: mcs, RetryThrottling: stage.Throttling()}.JSON()
	fmt.Println(sc)
	// Output:
	// {"loadBalancingConfig":null,"methodConfig":[{"name":[{"service":"shop.inventory.v1.InventoryService","method":"GetItem"}],"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}],"retryThrottling":{"maxTokens":10,"tokenRatio":0.1}}
}
