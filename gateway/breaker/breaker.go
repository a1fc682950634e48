package breaker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/deadline"
	"github.com/acme/shopgate/gateway/metrics"
	conns "github.com/acme/shopgate/gateway/upstream"
)

// Options carries what the process provides. Zero values are replaced by defaults.
type Options struct {
	// Logger for state changes (one line per change). Default: slog.Default().
	Logger *slog.Logger
	// Registerer for metrics. Default: none registered.
	Registerer prometheus.Registerer
}

// Breakers holds the breakers of every upstream, created on first use. It is safe for
// concurrent use and long-lived: a reload calls Update instead of building a new one.
type Breakers struct {
	logger  *slog.Logger
	state   *prometheus.GaugeVec
	reject  *prometheus.CounterVec
	current atomic.Pointer[generation]
	updMu   sync.Mutex // serializes Update
}

// generation is one configuration's breakers.
type generation struct {
	cfg Config
	mu  sync.RWMutex
	m   map[key]*breaker
}

// key names a breaker: the RPC or service (nameOf), and the pool of the connection the call
// went to ("" for the default pool, gateway/upstream.PoolOf).
type key struct{ name, pool string }

type breaker struct {
	cb       *gobreaker.TwoStepCircuitBreaker[struct{}]
	openErr  error // returned while open: UNAVAILABLE "circuit open for <name>"
	busyErr  error // returned while half-open with every probe slot taken
	rejected prometheus.Counter
}

// New validates cfg and builds the breakers.
func New(cfg Config, opts Options) (*Breakers, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating circuit breakers: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	b := &Breakers{
		logger: opts.Logger.With("component", "breaker"),
		state: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_breaker_state",
			Help: "State of each circuit breaker: 0 closed, 1 half-open, 2 open.",
		}, []string{"breaker"}),
		reject: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_breaker_rejected_total",
			Help: "Calls failed at once by an open or busy half-open circuit breaker.",
		}, []string{"breaker"}),
	}
	if opts.Registerer != nil {
		if b.state, err = metrics.RegisterOrReuse(opts.Registerer, b.state); err != nil {
			return nil, fmt.Errorf("creating circuit breakers: %w", err)
		}
		if b.reject, err = metrics.RegisterOrReuse(opts.Registerer, b.reject); err != nil {
			return nil, fmt.Errorf("creating circuit breakers: %w", err)
		}
	}
	b.current.Store(&generation{cfg: cfg, m: make(map[key]*breaker)})
	return b, nil
}

// Update replaces the settings on a configuration reload. Unchanged settings keep every
// breaker and its state; changed ones start new breakers, closed (gobreaker cannot change the
// settings of a live breaker).
func (b *Breakers) Update(cfg Config) error {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return fmt.Errorf("updating circuit breakers: %w", err)
	}
	b.updMu.Lock()
	defer b.updMu.Unlock()
	old := b.current.Load()
	if old.cfg == cfg {
		return nil
	}
	b.current.Store(&generation{cfg: cfg, m: make(map[key]*breaker)})
	old.mu.RLock()
	for _, br := range old.m {
		b.state.WithLabelValues(br.cb.Name()).Set(0)
	}
	old.mu.RUnlock()
	b.logger.Info("circuit breaker settings updated; breakers restart closed")
	return nil
}

// States returns the state of each breaker by name ("closed", "open", "half-open"), for
// /readyz. A breaker exists once its upstream was called.
func (b *Breakers) States() map[string]string {
	g := b.current.Load()
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make(map[string]string, len(g.m))
	for _, br := range g.m {
		out[br.cb.Name()] = br.cb.State().String()
	}
	return out
}

// nameOf returns the breaker name of a full method ("/pkg.Service/Method"): the service, or
// the method itself with ScopeRPC.
func nameOf(method string, perRPC bool) string {
	if perRPC {
		return method
	}
	s := strings.TrimPrefix(method, "/")
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		return s[:i]
	}
	return s
}

// get returns the breaker of method on the connection cc, creating it on first use. A call to
// a named pool (gateway/upstream.PoolOf) has a breaker of its own, named "<rpc or service>@<pool>":
// a canary that fails opens its circuit, not the stable pool's.
func (b *Breakers) get(method string, cc *grpc.ClientConn) *breaker {
	g := b.current.Load()
	k := key{name: nameOf(method, g.cfg.Scope == ScopeRPC), pool: conns.PoolOf(cc)}
	g.mu.RLock()
	br, ok := g.m[k]
	g.mu.RUnlock()
	if ok {
		return br
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if br, ok = g.m[k]; ok {
		return br
	}
	k = key{name: strings.Clone(k.name), pool: strings.Clone(k.pool)}
	name := k.name
	if k.pool != "" {
		name += "@" + k.pool
	}
	br = b.newBreaker(name, g.cfg)
	g.m[k] = br
	return br
}

func (b *Breakers) newBreaker(name string, cfg Config) *breaker {
	gauge := b.state.WithLabelValues(name)
	gauge.Set(0)
	return &breaker{
		cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](gobreaker.Settings{
			Name:        name,
			MaxRequests: cfg.HalfOpenMaxRequests,
			Interval:    cfg.Interval,
			Timeout:     cfg.OpenTimeout,
			ReadyToTrip: func(c gobreaker.Counts) bool {
				if c.ConsecutiveFailures >= cfg.ConsecutiveFailures {
					return true
				}
				return cfg.FailureRatio > 0 && c.Requests >= cfg.MinRequests &&
					float64(c.TotalFailures) >= cfg.FailureRatio*float64(c.Requests)
			},
			OnStateChange: func(name string, from, to gobreaker.State) {
				gauge.Set(stateValue(to))
				b.logger.Warn("circuit breaker state changed", "breaker", name, "from", from.String(), "to", to.String())
			},
			IsSuccessful: func(err error) bool { return err != errFailure },
			IsExcluded:   func(err error) bool { return err == errIgnored },
		}),
		openErr:  status.Errorf(codes.Unavailable, "circuit open for %s", name),
		busyErr:  status.Errorf(codes.Unavailable, "circuit half-open for %s: probe in progress", name),
		rejected: b.reject.WithLabelValues(name),
	}
}

func stateValue(s gobreaker.State) float64 {
	switch s {
	case gobreaker.StateHalfOpen:
		return 1
	case gobreaker.StateOpen:
		return 2
	default:
		return 0
	}
}

// The outcomes handed to gobreaker.
var (
	errFailure = errors.New("upstream failure")
	errIgnored = errors.New("not the upstream's doing")
)

// outcome classifies a call's result: nil (the upstream answered, even with a client error such
// as INVALID_ARGUMENT or NOT_FOUND), errFailure (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL,
// UNKNOWN, DATA_LOSS) or errIgnored (the caller cancelled, the call was bounded by the
// caller's own deadline rather than the route's timeout: one client's impatience must not open
// the circuit for everyone; or the call ran out of time queued for a stream slot: see
// queuedOnly); or it failed inside the gateway's own client before any stream existed: grpc-go
// refuses a metadata value it cannot send, or a message it cannot marshal, with INTERNAL, and
// that is never the upstream's fault). Whose deadline bounded the call was decided when it was
// set, by gateway/deadline, the stage above this one: no timing guess is needed here.
func outcome(ctx context.Context, err error, cc *grpc.ClientConn, sent *peer.Peer) error {
	if err == nil {
		return nil
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return errIgnored
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		if deadline.ClientBound(ctx) || queuedOnly(cc, sent) {
			return errIgnored
		}
		return errFailure
	case codes.Internal, codes.Unknown, codes.DataLoss:
		if queuedOnly(cc, sent) { // raised inside the gateway's own client: nothing was sent
			return errIgnored
		}
		return errFailure
	case codes.Unavailable:
		return errFailure
	case codes.Canceled:
		return errIgnored
	default:
		return nil
	}
}

// queuedOnly reports whether a call that ran out of time never got a stream on a READY
// connection: it waited for one of the server's MaxConcurrentStreams slots (grpc-go queues a
// call beyond them until its deadline) and nothing reached the upstream. That wait measures
// the gateway's own queue, not the upstream's health, so it never counts against the breaker
// (the incident: 256 :watch streams of one caller held every slot, unary calls timed out
// queued, and the breaker opened for everyone). sent is the peer that grpc-go fills in only
// for a call whose last attempt got a stream (grpc.Peer). A call that timed out while the
// connection was not READY (waiting to connect) still counts: the upstream is unreachable.
func queuedOnly(cc *grpc.ClientConn, sent *peer.Peer) bool {
	return sent.Addr == nil && cc != nil && cc.GetState() == connectivity.Ready
}

// allow asks br for a slot; the error is the UNAVAILABLE status to return at once.
func (br *breaker) allow() (func(error), error) {
	done, err := br.cb.Allow()
	if err != nil {
		br.rejected.Inc()
		if errors.Is(err, gobreaker.ErrTooManyRequests) {
			return nil, br.busyErr
		}
		return nil, br.openErr
	}
	return done, nil
}

// UnaryClientInterceptor fails calls at once with UNAVAILABLE ("circuit open for <service>")
// while the breaker is open, without touching the upstream. Install it on each upstream's
// ClientConn, outside the retries of the service config (one failed call, after its retries,
// counts once).
func (b *Breakers) UnaryClientInterceptor() grpc.UnaryClientInterceptor {
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		done, err := b.get(method, cc).allow()
		if err != nil {
			return err
		}
		sent := peers.Get().(*unaryPeer)
		callOpts := sent.opt[:]
		if len(opts) > 0 {
			callOpts = append(opts[:len(opts):len(opts)], sent.opt[0])
		}
		err = invoker(ctx, method, req, reply, cc, callOpts...)
		done(outcome(ctx, err, cc, &sent.peer))
		sent.peer = peer.Peer{} // grpc-go filled it before invoker returned; nothing keeps it now
		peers.Put(sent)
		return err
	}
}

// unaryPeer is the grpc.Peer call option of a unary call and the peer it fills, pooled: a unary
// call's options are done with when its invoker returns, and a fresh pair per call cost two
// allocations. (A stream fills its peer when it ends, after the interceptor returned: streams
// get a pair of their own.)
type unaryPeer struct {
	peer peer.Peer
	opt  [1]grpc.CallOption
}

var peers = sync.Pool{New: func() any {
	p := new(unaryPeer)
	p.opt[0] = grpc.Peer(&p.peer)
	return p
}}

// StreamClientInterceptor does the same for streaming calls; what counts is whether the stream
// opened, not how it ends. A stream that timed out queued for a slot (queuedOnly) does not
// count.
func (b *Breakers) StreamClientInterceptor() grpc.StreamClientInterceptor {
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		done, err := b.get(method, cc).allow()
		if err != nil {
			return nil, err
		}
		var sent peer.Peer
		cs, err := streamer(ctx, desc, cc, method, append(opts, grpc.Peer(&sent))...)
		done(outcome(ctx, err, cc, &sent))
		return cs, err
	}
}
