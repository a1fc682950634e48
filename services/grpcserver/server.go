package grpcserver

import (
	"log/slog"
	"time"

	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/logging"
	"github.com/grpc-ecosystem/go-grpc-middleware/v2/interceptors/recovery"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/reflection"

	"github.com/acme/shopgate/internal/telemetry/wire"
	"github.com/acme/shopgate/services/passport"
	"go.opentelemetry.io/otel/trace"
)

// Defaults of Options.
const (
	DefaultMaxConcurrentStreams = 256
	DefaultKeepaliveMinTime     = 10 * time.Second
	DefaultKeepaliveTime        = 2 * time.Minute
	DefaultKeepaliveTimeout     = 20 * time.Second
	DefaultMaxRecvMsgSize       = 4 << 20
	// DefaultStreamWindow and DefaultConnWindow are the flow-control windows (Options).
	DefaultStreamWindow int32 = 4 << 20
	DefaultConnWindow   int32 = 16 << 20
	minWindow           int32 = 64 << 10 // grpc-go ignores smaller windows
)

// Options configures New. The zero value means the defaults.
type Options struct {
	// Logger receives one line per call and every recovered panic. Default: slog.Default().
	Logger *slog.Logger
	// Services are the full service names reported SERVING by the health service, beside "".
	Services []string
	// Health is the health server to register; pass your own to flip it in Stop. Default: a new
	// one (not reachable afterwards).
	Health *health.Server
	// MaxConcurrentStreams caps the streams of one connection. Default: 256.
	MaxConcurrentStreams uint32
	// KeepaliveMinTime is the shortest client ping interval tolerated; a client pinging faster
	// is disconnected. Default: 10s.
	KeepaliveMinTime time.Duration
	// KeepaliveTime is how long a connection may idle before the server pings it. Default: 2m.
	KeepaliveTime time.Duration
	// KeepaliveTimeout is how long the server waits for a ping reply. Default: 20s.
	KeepaliveTimeout time.Duration
	// MaxRecvMsgSize caps a received message, in bytes. Default: 4 MiB.
	MaxRecvMsgSize int
	// StreamWindow and ConnWindow are the fixed HTTP/2 flow-control windows, in bytes, the
	// server grants each stream and each connection. Fixed windows turn off grpc-go's
	// bandwidth-delay estimation, which otherwise answers nearly every request that carries a
	// message with a PING the client must acknowledge (the gateway dials its upstreams with the
	// same windows: gateway/upstream). Default: DefaultStreamWindow (4 MiB) and
	// DefaultConnWindow (16 MiB); smaller than 64 KiB is raised to 64 KiB (grpc-go's floor).
	StreamWindow, ConnWindow int32
	// DisableReflection leaves server reflection out. Default: false (reflection on).
	DisableReflection bool
	// Metrics records every call (see NewMetrics). Default: nil, no metrics.
	Metrics *Metrics
	// Passport verifies the gateway's passport of every call before its handler runs, and
	// refuses a bad one (services/passport). Default: nil, no caller is ever verified: every
	// call is anonymous.
	Passport *passport.Verifier
	// TracerProvider, when set, gives every call a server span (otelgrpc's stats handler),
	// continuing the caller's W3C trace context. Default nil: tracing off, no handler.
	TracerProvider trace.TracerProvider
	// Extra are appended to the server options (e.g. credentials).
	Extra []grpc.ServerOption
}

func (o *Options) withDefaults() {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Health == nil {
		o.Health = health.NewServer()
	}
	if o.MaxConcurrentStreams == 0 {
		o.MaxConcurrentStreams = DefaultMaxConcurrentStreams
	}
	if o.KeepaliveMinTime <= 0 {
		o.KeepaliveMinTime = DefaultKeepaliveMinTime
	}
	if o.KeepaliveTime <= 0 {
		o.KeepaliveTime = DefaultKeepaliveTime
	}
	if o.KeepaliveTimeout <= 0 {
		o.KeepaliveTimeout = DefaultKeepaliveTimeout
	}
	if o.MaxRecvMsgSize <= 0 {
		o.MaxRecvMsgSize = DefaultMaxRecvMsgSize
	}
	if o.StreamWindow <= 0 {
		o.StreamWindow = DefaultStreamWindow
	}
	if o.ConnWindow <= 0 {
		o.ConnWindow = DefaultConnWindow
	}
	o.StreamWindow, o.ConnWindow = max(o.StreamWindow, minWindow), max(o.ConnWindow, minWindow)
}

// New returns a gRPC server with logging, metrics (opts.Metrics) and recovery interceptors,
// stream and keepalive limits, fixed flow-control windows, the health service (every name in
// opts.Services and "" SERVING) and reflection. Register the services on it, then Serve.
func New(opts Options) *grpc.Server {
	opts.withDefaults()
	log := slogLogger(opts.Logger)
	// Outermost first. Recovery is innermost, so the log line and the metrics see the INTERNAL
	// a panic becomes; the passport just above it, so they see a refused passport too.
	unary := []grpc.UnaryServerInterceptor{logging.UnaryServerInterceptor(log, loggingOptions()...)}
	stream := []grpc.StreamServerInterceptor{logging.StreamServerInterceptor(log, loggingOptions()...)}
	if opts.Metrics != nil {
		unary = append(unary, opts.Metrics.server.UnaryServerInterceptor())
		stream = append(stream, opts.Metrics.server.StreamServerInterceptor())
	}
	if opts.Passport != nil {
		unary = append(unary, opts.Passport.UnaryServerInterceptor())
		stream = append(stream, opts.Passport.StreamServerInterceptor())
	}
	unary = append(unary, recovery.UnaryServerInterceptor(recovered(opts.Logger)))
	stream = append(stream, recovery.StreamServerInterceptor(recovered(opts.Logger)))
	serverOpts := []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(unary...),
		grpc.ChainStreamInterceptor(stream...),
		grpc.MaxConcurrentStreams(opts.MaxConcurrentStreams),
		grpc.MaxRecvMsgSize(opts.MaxRecvMsgSize),
		grpc.InitialWindowSize(opts.StreamWindow),
		grpc.InitialConnWindowSize(opts.ConnWindow),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             opts.KeepaliveMinTime,
			PermitWithoutStream: true,
		}),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    opts.KeepaliveTime,
			Timeout: opts.KeepaliveTimeout,
		}),
	}
	serverOpts = append(serverOpts, wire.GRPCServerOptions(opts.TracerProvider)...)
	srv := grpc.NewServer(append(serverOpts, opts.Extra...)...)
	healthpb.RegisterHealthServer(srv, opts.Health)
	opts.Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for _, name := range opts.Services {
		opts.Health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	if !opts.DisableReflection {
		reflection.Register(srv)
	}
	return srv
}

// Stop shuts srv down gracefully: every health status becomes NOT_SERVING (load balancers stop
// sending), in-flight calls get up to timeout to finish (GracefulStop), then the rest are cut
// (Stop). hs may be nil.
func Stop(srv *grpc.Server, hs *health.Server, timeout time.Duration) {
	if hs != nil {
		hs.Shutdown()
	}
	done := make(chan struct{})
	go func() {
		srv.GracefulStop()
		close(done)
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		srv.Stop()
		<-done
	}
}
