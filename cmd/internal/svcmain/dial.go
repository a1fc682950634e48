package svcmain

import (
	"log/slog"

	"github.com/acme/shopgate/internal/telemetry/wire"
	"github.com/acme/shopgate/services/grpcclient"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// Dialer dials the other services a service calls (orderd: inventory; storefrontd: the three),
// each connection with what they all share: go-grpc-middleware's client metrics on reg
// (grpc_client_*), client spans of tp (nil: none) and the TLS of -upstream-tls-* (none
// without them).
type Dialer func(name, addrs string) (*grpc.ClientConn, error)

// NewDialer returns the Dialer of a service configured by c.
func (c Config) NewDialer(reg prometheus.Registerer, tp trace.TracerProvider, log *slog.Logger) (Dialer, error) {
	opts, err := grpcclient.WithMetrics(reg)
	if err != nil {
		return nil, err
	}
	opts = append(opts, wire.GRPCDialOptions(tp)...)
	tc, err := c.TLS.UpstreamClient(log) // nil without -upstream-tls-*
	if err != nil {
		return nil, err
	}
	return func(name, addrs string) (*grpc.ClientConn, error) {
		return grpcclient.DialTLS(name, addrs, tc, opts...)
	}, nil
}
