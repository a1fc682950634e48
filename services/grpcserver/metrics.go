package grpcserver

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/status"
)

// Metrics are the per-call server metrics: grpc_server_handled_total{grpc_service,
// grpc_method, grpc_code} and grpc_server_handling_seconds{grpc_service, grpc_method}. Pass
// them to New in Options.Metrics; several servers may share one.
type Metrics struct {
	handled  *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMetrics registers the metrics on reg; collectors already registered on it (by another
// server of the same process) are reused.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	handled := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "grpc_server_handled_total",
		Help: "RPCs completed on the server, by service, method and status code.",
	}, []string{"grpc_service", "grpc_method", "grpc_code"})
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "grpc_server_handling_seconds",
		Help:    "Time from the start of an RPC to its end on the server.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"grpc_service", "grpc_method"})
	var err error
	if handled, err = register(reg, handled); err != nil {
		return nil, fmt.Errorf("registering grpc server metrics: %w", err)
	}
	if duration, err = register(reg, duration); err != nil {
		return nil, fmt.Errorf("registering grpc server metrics: %w", err)
	}
	return &Metrics{handled: handled, duration: duration}, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}

func (m *Metrics) observe(fullMethod string, err error, start time.Time) {
	svc, method := splitMethod(fullMethod)
	m.handled.WithLabelValues(svc, method, status.Code(err).String()).Inc()
	m.duration.WithLabelValues(svc, method).Observe(time.Since(start).Seconds())
}

func (m *Metrics) unary() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		start := time.Now()
		resp, err := handler(ctx, req)
		m.observe(info.FullMethod, err, start)
		return resp, err
	}
}

func (m *Metrics) stream() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		start := time.Now()
		err := handler(srv, ss)
		m.observe(info.FullMethod, err, start)
		return err
	}
}

// splitMethod turns "/pkg.Service/Method" into "pkg.Service", "Method".
func splitMethod(full string) (string, string) {
	full = strings.TrimPrefix(full, "/")
	if i := strings.LastIndexByte(full, '/'); i >= 0 {
		return full[:i], full[i+1:]
	}
	return "unknown", full
}
