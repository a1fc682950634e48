package grpcserver

import (
	"errors"
	"fmt"

	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
)

// handlingBuckets are the buckets of grpc_server_handling_seconds, in seconds: 0.5ms to 10s.
var handlingBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics are the per-call server metrics of go-grpc-middleware's Prometheus provider, with the
// handling-time histogram on (buckets from 0.5ms to 10s): grpc_server_started_total,
// grpc_server_handled_total (also by grpc_code), grpc_server_msg_received_total,
// grpc_server_msg_sent_total and grpc_server_handling_seconds, all by grpc_type, grpc_service
// and grpc_method. Pass them to New in Options.Metrics; several servers may share one.
type Metrics struct {
	server *grpcprom.ServerMetrics
}

// NewMetrics registers the metrics on reg; the collector already registered on it (by another
// server of the same process) is reused.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := grpcprom.NewServerMetrics(grpcprom.WithServerHandlingTimeHistogram(grpcprom.WithHistogramBuckets(handlingBuckets)))
	if err := reg.Register(m); err != nil {
		var already prometheus.AlreadyRegisteredError
		if !errors.As(err, &already) {
			return nil, fmt.Errorf("registering grpc server metrics: %w", err)
		}
		existing, ok := already.ExistingCollector.(*grpcprom.ServerMetrics)
		if !ok {
			return nil, fmt.Errorf("registering grpc server metrics: %w", err)
		}
		m = existing
	}
	return &Metrics{server: m}, nil
}
