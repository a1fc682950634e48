package upstream

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"
)

// ServiceConfig is the gRPC service config (https://github.com/grpc/grpc/blob/master/doc/service_config.md)
// the gateway gives every upstream connection: round robin over the upstream's addresses with
// outlier ejection (the gateway's own policy, registered by this package), gRPC health
// checking, and the method configs (retries) contributed by other packages.
type ServiceConfig struct {
	// LoadBalancingConfig names the policy: Dial gives [{"shopgate_round_robin_ejection": {}}],
	// round_robin with outlier ejection (see Ejection).
	LoadBalancingConfig []map[string]struct{} `json:"loadBalancingConfig"`
	// HealthCheckConfig turns on client-side health checking (grpc.health.v1).
	HealthCheckConfig *HealthCheckConfig `json:"healthCheckConfig,omitempty"`
	// MethodConfig holds per-method settings (retries, timeouts).
	MethodConfig []MethodConfig `json:"methodConfig,omitempty"`
	// RetryThrottling bounds retries when the upstream fails a lot.
	RetryThrottling *RetryThrottling `json:"retryThrottling,omitempty"`
}

// HealthCheckConfig names the health service to watch; "" is the server's overall health.
type HealthCheckConfig struct {
	ServiceName string `json:"serviceName"`
}

// MethodConfig applies to the methods it names.
type MethodConfig struct {
	// Name selects methods: {service} for all of a service, {service, method} for one.
	Name []MethodName `json:"name"`
	// Timeout as a gRPC JSON duration ("1.5s"): grpc-go bounds each call (all its attempts) by
	// it and sends it upstream as grpc-timeout. Empty: none. The gateway leaves it empty: its
	// deadline stage (gateway/deadline) bounds each call by its route's timeout, above the
	// circuit breaker.
	Timeout string `json:"timeout,omitempty"`
	// RetryPolicy retries failed attempts; nil: no retries.
	RetryPolicy *RetryPolicy `json:"retryPolicy,omitempty"`
	// WaitForReady queues calls while no connection is READY instead of failing at once.
	// Default (nil): false, fail fast with UNAVAILABLE.
	WaitForReady *bool `json:"waitForReady,omitempty"`
}

// MethodName selects a service ("shop.order.v1.OrderService") or one of its methods.
type MethodName struct {
	Service string `json:"service"`
	Method  string `json:"method,omitempty"`
}

// RetryPolicy is the gRPC retry policy of a method.
type RetryPolicy struct {
	// MaxAttempts including the first, 2 to 5 (gRPC caps it at 5).
	MaxAttempts int `json:"maxAttempts"`
	// InitialBackoff as a gRPC JSON duration ("0.1s").
	InitialBackoff string `json:"initialBackoff"`
	// MaxBackoff as a gRPC JSON duration ("1s").
	MaxBackoff string `json:"maxBackoff"`
	// BackoffMultiplier grows the backoff after each attempt (> 0).
	BackoffMultiplier float64 `json:"backoffMultiplier"`
	// RetryableStatusCodes as code names ("UNAVAILABLE").
	RetryableStatusCodes []string `json:"retryableStatusCodes"`
}

// RetryThrottling stops retrying when too many calls fail (token bucket per connection).
type RetryThrottling struct {
	// MaxTokens in (0, 1000].
	MaxTokens int `json:"maxTokens"`
	// TokenRatio in (0, 1].
	TokenRatio float64 `json:"tokenRatio"`
}

// JSON renders sc as the service config JSON grpc.WithDefaultServiceConfig takes.
func (sc ServiceConfig) JSON() (string, error) {
	b, err := json.Marshal(sc)
	if err != nil {
		return "", err
	}
	return string(b), nil
}

// Duration renders d as a service config (protobuf JSON) duration: "0.1s", "10s".
func Duration(d time.Duration) string {
	return strconv.FormatFloat(d.Seconds(), 'f', -1, 64) + "s"
}

// ParseMethod cuts a full method name ("/pkg.Service/Method") into the MethodName that selects
// it; ok is false for a malformed name.
func ParseMethod(fullMethod string) (name MethodName, ok bool) {
	s, found := strings.CutPrefix(fullMethod, "/")
	if !found {
		return MethodName{}, false
	}
	service, method, ok := strings.Cut(s, "/")
	if !ok || service == "" || method == "" || strings.Contains(method, "/") {
		return MethodName{}, false
	}
	return MethodName{Service: service, Method: method}, true
}
