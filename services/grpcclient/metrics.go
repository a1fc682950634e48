package grpcclient

import (
	"errors"
	"fmt"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// handlingBuckets are the buckets of grpc_client_handling_seconds, in seconds: 0.5ms to 10s, as
// the servers' grpc_server_handling_seconds and the gateway's upstream calls.
var handlingBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// WithMetrics returns the dial options that record every call of a connection with
// go-grpc-middleware's client metrics: grpc_client_started_total, grpc_client_handled_total
// (also by grpc_code), grpc_client_msg_received_total, grpc_client_msg_sent_total and
// grpc_client_handling_seconds, by grpc_type, grpc_service and grpc_method. They are registered
// on reg; the collector already registered there (another connection of the process) is
// reused. Pass the options to Dial.
func WithMetrics(reg prometheus.Registerer) ([]grpc.DialOption, error) {
	m := grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram(grpcprom.WithHistogramBuckets(handlingBuckets)))
	if err := reg.Register(m); err != nil {
		var already prometheus.AlreadyRegisteredError
		existing, ok := (*grpcprom.ClientMetrics)(nil), false
		if errors.As(err, &already) {
			existing, ok = already.ExistingCollector.(*grpcprom.ClientMetrics)
		}
		if !ok {
			return nil, fmt.Errorf("registering grpc client metrics: %w", err)
		}
		m = existing
	}
	return []grpc.DialOption{
		grpc.WithChainUnaryInterceptor(m.UnaryClientInterceptor()),
		grpc.WithChainStreamInterceptor(m.StreamClientInterceptor()),
	}, nil
}
