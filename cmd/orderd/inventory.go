package main

import (
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking (healthCheckConfig)
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// inventoryServiceConfig balances over every inventory instance and skips those that report
// NOT_SERVING (grpc.health.v1).
const inventoryServiceConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

// dialInventory connects to the inventory service at addrs: one host:port, a comma-separated
// list of them (balanced round robin with health checks), or a gRPC target such as
// dns:///inventory:9103. Keepalive pings (10s, 5s to answer) take a frozen instance out of
// the rotation.
func dialInventory(addrs string) (*grpc.ClientConn, error) {
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(inventoryServiceConfig),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: 10 * time.Second, Timeout: 5 * time.Second, PermitWithoutStream: true}),
	}
	target := strings.TrimSpace(addrs)
	if !strings.Contains(target, "://") {
		var state resolver.State
		for _, a := range strings.Split(target, ",") {
			if a = strings.TrimSpace(a); a == "" {
				return nil, fmt.Errorf("inventory address list %q: an empty entry", addrs)
			}
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
		}
		r := manual.NewBuilderWithScheme("inventory")
		r.InitialState(state)
		opts = append(opts, grpc.WithResolvers(r))
		target = "inventory:///inventory"
	}
	cc, err := grpc.NewClient(target, opts...)
	if err != nil {
		return nil, fmt.Errorf("inventory client: %w", err)
	}
	return cc, nil
}
