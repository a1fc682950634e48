package metrics

import (
	grpcprom "github.com/grpc-ecosystem/go-grpc-middleware/providers/prometheus"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
)

// UpstreamBuckets are the buckets of grpc_client_handling_seconds, in seconds (0.5 ms to 10 s),
// the services' grpc_server_handling_seconds buckets, so that the two compare bucket by bucket.
var UpstreamBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Upstream is the client side of the gateway's upstream calls, with go-grpc-middleware's
// Prometheus provider, names and labels: grpc_client_started_total,
// grpc_client_handled_total (also by grpc_code), grpc_client_msg_received_total,
// grpc_client_msg_sent_total and grpc_client_handling_seconds (UpstreamBuckets), all by
// grpc_type, grpc_service and grpc_method. One call counts once, whatever grpc-go's retries.
type Upstream struct {
	client *grpcprom.ClientMetrics
}

// NewUpstream creates the upstream call metrics and registers them on reg (nil: not registered;
// a collector of the same description already there, e.g. the previous gateway of a process or
// a service client in the same process, is reused).
func NewUpstream(reg prometheus.Registerer) (*Upstream, error) {
	c := grpcprom.NewClientMetrics(grpcprom.WithClientHandlingTimeHistogram(grpcprom.WithHistogramBuckets(UpstreamBuckets)))
	if reg != nil {
		var err error
		if c, err = RegisterOrReuse(reg, c); err != nil {
			return nil, err
		}
	}
	return &Upstream{client: c}, nil
}

// Unary is the unary client interceptor that records each call.
func (u *Upstream) Unary() grpc.UnaryClientInterceptor { return u.client.UnaryClientInterceptor() }

// Stream is the stream client interceptor that records each stream and its messages.
func (u *Upstream) Stream() grpc.StreamClientInterceptor { return u.client.StreamClientInterceptor() }
