package metrics

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// UpstreamBuckets are the buckets of grpc_client_handling_seconds, in seconds (0.5 ms to 10 s),
// the services' grpc_server_handling_seconds buckets, so that the two compare bucket by bucket.
var UpstreamBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Upstream is the client side of the gateway's upstream calls under go-grpc-middleware's
// Prometheus names, labels and semantics: grpc_client_started_total,
// grpc_client_handled_total (also by grpc_code), grpc_client_msg_received_total,
// grpc_client_msg_sent_total and grpc_client_handling_seconds (UpstreamBuckets), all by
// grpc_type, grpc_service and grpc_method. One call counts once, whatever grpc-go's retries.
//
// It is not go-grpc-middleware's interceptor, whose reporter looks its five series up by
// label values on every call (hashing them, taking each vector's lock, allocating): that
// cost 4 points of `make bench`'s ratio to bare grpc-gateway. Here each method's series are
// resolved once and cached (copy on write), so a call costs the increments and one
// observation, no allocation.
type Upstream struct {
	started, handled, received, sent *prometheus.CounterVec
	handling                         *prometheus.HistogramVec

	methods  atomic.Pointer[map[methodKey]*methodSeries] // copy on write
	methodMu sync.Mutex
}

// methodKey names one method's series: its full name and its grpc_type.
type methodKey struct {
	fullMethod string
	typ        string
}

// methodSeries are one method's children of the vectors.
type methodSeries struct {
	started, received, sent prometheus.Counter
	handling                prometheus.Observer
	handled                 atomic.Pointer[map[codes.Code]prometheus.Counter] // copy on write
	mu                      sync.Mutex
	labels                  [3]string // grpc_type, grpc_service, grpc_method
	vec                     *prometheus.CounterVec
}

// NewUpstream creates the upstream call metrics and registers them on reg (nil: not registered;
// a collector of the same description already there, e.g. the previous gateway of a process, is
// reused).
func NewUpstream(reg prometheus.Registerer) (*Upstream, error) {
	labels := []string{"grpc_type", "grpc_service", "grpc_method"}
	u := &Upstream{
		started: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_client_started_total", Help: "Total number of RPCs started on the client.",
		}, labels),
		handled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_client_handled_total", Help: "Total number of RPCs completed by the client, regardless of success or failure.",
		}, append(labels[:3:3], "grpc_code")),
		received: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_client_msg_received_total", Help: "Total number of RPC stream messages received by the client.",
		}, labels),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "grpc_client_msg_sent_total", Help: "Total number of gRPC stream messages sent by the client.",
		}, labels),
		handling: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "grpc_client_handling_seconds", Help: "Histogram of response latency (seconds) of the gRPC until it is finished by the application.",
			Buckets: UpstreamBuckets,
		}, labels),
	}
	if reg != nil {
		var err error
		for _, c := range []**prometheus.CounterVec{&u.started, &u.handled, &u.received, &u.sent} {
			if *c, err = RegisterOrReuse(reg, *c); err != nil {
				return nil, err
			}
		}
		if u.handling, err = RegisterOrReuse(reg, u.handling); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// The grpc_type values.
const (
	typeUnary        = "unary"
	typeClientStream = "client_stream"
	typeServerStream = "server_stream"
	typeBidiStream   = "bidi_stream"
)

// Unary is the unary client interceptor that records each call: started, one message sent,
// one received when it succeeded, handled by code, and its duration.
func (u *Upstream) Unary() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		se := u.series(method, typeUnary)
		start := time.Now()
		se.started.Inc()
		se.sent.Inc()
		err := invoker(ctx, method, req, reply, cc, opts...)
		if err == nil {
			se.received.Inc()
		}
		se.done(err, start)
		return err
	}
}

// Stream is the stream client interceptor that records each stream and its messages; a stream
// is handled when it fails to start, when its last message was received (io.EOF: OK), or on
// its first receive error.
func (u *Upstream) Stream() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		typ := typeBidiStream
		switch {
		case desc.ClientStreams && !desc.ServerStreams:
			typ = typeClientStream
		case !desc.ClientStreams && desc.ServerStreams:
			typ = typeServerStream
		}
		se := u.series(method, typ)
		start := time.Now()
		se.started.Inc()
		cs, err := streamer(ctx, desc, cc, method, opts...)
		if err != nil {
			se.done(err, start)
			return nil, err
		}
		return &countedStream{ClientStream: cs, se: se, start: start, serverStreams: desc.ServerStreams}, nil
	}
}

// countedStream counts a stream's messages and its end.
type countedStream struct {
	grpc.ClientStream
	se            *methodSeries
	start         time.Time
	serverStreams bool
	ended         atomic.Bool
}

func (s *countedStream) SendMsg(m any) error {
	err := s.ClientStream.SendMsg(m)
	if err == nil {
		s.se.sent.Inc()
	}
	return err
}

func (s *countedStream) RecvMsg(m any) error {
	err := s.ClientStream.RecvMsg(m)
	if err == nil {
		s.se.received.Inc()
		if s.serverStreams {
			return nil
		}
	}
	if s.ended.CompareAndSwap(false, true) {
		end := err
		if errors.Is(err, io.EOF) {
			end = nil
		}
		s.se.done(end, s.start)
	}
	return err
}

// done records a finished call: handled by the code of err, and its duration since start.
func (se *methodSeries) done(err error, start time.Time) {
	code := codes.OK
	if err != nil {
		st, ok := status.FromError(err)
		if !ok {
			st = status.FromContextError(err) // as grpc-go and go-grpc-middleware do
		}
		code = st.Code()
	}
	loadOrAdd(&se.handled, &se.mu, code, func() prometheus.Counter {
		return se.vec.WithLabelValues(se.labels[0], se.labels[1], se.labels[2], code.String())
	}).Inc()
	se.handling.Observe(time.Since(start).Seconds())
}

// series returns the series of fullMethod ("/pkg.Service/Method") and typ, resolving them on
// the method's first call.
func (u *Upstream) series(fullMethod, typ string) *methodSeries {
	return loadOrAdd(&u.methods, &u.methodMu, methodKey{fullMethod, typ}, func() *methodSeries {
		service, method := splitMethod(fullMethod)
		return &methodSeries{
			started:  u.started.WithLabelValues(typ, service, method),
			received: u.received.WithLabelValues(typ, service, method),
			sent:     u.sent.WithLabelValues(typ, service, method),
			handling: u.handling.WithLabelValues(typ, service, method),
			labels:   [3]string{typ, service, method},
			vec:      u.handled,
		}
	})
}

// splitMethod splits "/pkg.Service/Method" into its service and method, as go-grpc-middleware
// does ("unknown" for a malformed name).
func splitMethod(fullMethod string) (service, method string) {
	name := strings.TrimPrefix(fullMethod, "/")
	if i := strings.Index(name, "/"); i >= 0 {
		return name[:i], name[i+1:]
	}
	return "unknown", "unknown"
}
