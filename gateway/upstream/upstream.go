// Package upstream holds the gateway's gRPC client connections: two *grpc.ClientConn per
// upstream service (Conn: one for unary calls, one for streams, so that long streams never
// hold the slots unary calls need), over real connections, balanced round robin over the service's addresses
// with gRPC health checking, HTTP/2 keepalive pings and outlier ejection (an instance whose
// calls keep failing is left out for a while, then re-admitted half-open: Ejection), and the
// per-method service config (retries) that other packages contribute.
package upstream

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking (healthCheckConfig)
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// Options carries what Dial needs besides the addresses. The zero value dials plaintext
// connections balanced round robin with outlier ejection, health checking, keepalive pings,
// fixed flow-control windows and no retries.
type Options struct {
	// MethodConfigs are added to every connection's service config (gateway/retry provides them).
	// Each names its service; a config for another service is harmless.
	MethodConfigs []MethodConfig
	// RetryThrottling applies to every connection. Default: none.
	RetryThrottling *RetryThrottling
	// UnaryInterceptors and StreamInterceptors run on every call, first outermost
	// (the circuit breaker's go here).
	UnaryInterceptors  []grpc.UnaryClientInterceptor
	StreamInterceptors []grpc.StreamClientInterceptor
	// DialOptions are appended last (tests add a dialer; production may add TLS credentials).
	// Default: plaintext (insecure) transport credentials.
	DialOptions []grpc.DialOption
	// DisableHealthCheck leaves out healthCheckConfig. Default: false (health checking on).
	DisableHealthCheck bool
	// StreamWindow and ConnWindow are the fixed HTTP/2 flow-control windows, in bytes, that the
	// gateway grants each upstream stream and connection (at least 64 KiB each; less is
	// raised to 64 KiB). Fixed windows turn off grpc-go's bandwidth-delay estimation, which
	// otherwise follows nearly every response with a window update and a PING (one more write
	// and read on each side per call) to grow windows that a gateway next to its services
	// never needs past these. Default: 4 MiB per stream (grpc-go's default largest message,
	// so one reply never waits for a window update), 16 MiB per connection (the ceiling the
	// estimation itself would reach).
	StreamWindow, ConnWindow int32
	// KeepaliveTime is how long a connection may go without reading anything before the
	// gateway pings it, and KeepaliveTimeout how long it then waits for any answer before it
	// closes the connection: an instance that stopped answering (a frozen process, a dropped
	// network path) leaves the round robin within KeepaliveTime+KeepaliveTimeout, calls in
	// flight or not. Pings are sent with no call in flight too. grpc-go raises a time under
	// 10s to 10s, and the services must allow it: grpc-go servers close a connection pinged
	// more often than their keepalive.EnforcementPolicy.MinTime (services/grpcserver: 10s).
	// Negative KeepaliveTime: no pings. Default: 10s and 5s.
	KeepaliveTime, KeepaliveTimeout time.Duration
	// Ejection configures outlier ejection; the zero value means its defaults (on).
	Ejection Ejection

	now func() time.Time // tests: the ejection clock; nil: time.Now
}

// Default keepalive (Options.KeepaliveTime, Options.KeepaliveTimeout).
const (
	DefaultKeepaliveTime    = 10 * time.Second
	DefaultKeepaliveTimeout = 5 * time.Second
)

// keepalive returns the keepalive parameters of o, defaults applied; ok is false with
// keepalive off.
func (o Options) keepalive() (kp keepalive.ClientParameters, ok bool) {
	if o.KeepaliveTime < 0 {
		return kp, false
	}
	kp = keepalive.ClientParameters{Time: o.KeepaliveTime, Timeout: o.KeepaliveTimeout, PermitWithoutStream: true}
	if kp.Time == 0 {
		kp.Time = DefaultKeepaliveTime
	}
	if kp.Timeout <= 0 {
		kp.Timeout = DefaultKeepaliveTimeout
	}
	return kp, true
}

// Default flow-control windows (Options.StreamWindow, Options.ConnWindow).
const (
	DefaultStreamWindow int32 = 4 << 20
	DefaultConnWindow   int32 = 16 << 20
	minWindow           int32 = 64 << 10 // grpc-go ignores smaller windows
)

// windows returns the stream and connection windows of o, defaults and floor applied.
func (o Options) windows() (stream, conn int32) {
	stream, conn = o.StreamWindow, o.ConnWindow
	if stream == 0 {
		stream = DefaultStreamWindow
	}
	if conn == 0 {
		conn = DefaultConnWindow
	}
	return max(stream, minWindow), max(conn, minWindow)
}

// Set is the gateway's upstream connections, by full service name.
type Set struct {
	conns map[string]*Conn
	names []string

	closeOnce sync.Once
	closeErr  error
}

// Conn is one upstream service's connections. It is a grpc.ClientConnInterface that sends
// unary calls (Invoke) over one *grpc.ClientConn and streams (NewStream) over another, both
// dialed with the same options (interceptors, service config, health checks, keepalive,
// outlier ejection), each with its own HTTP/2 connection per instance.
//
// Why two: grpc-go holds one HTTP/2 connection per address, and beyond the server's
// MaxConcurrentStreams (256 for the shop's services) a new call waits for a slot until its
// deadline. Streams such as :watch live for minutes; on a shared connection enough of them
// leave no slot for the unary calls, which then time out (504) and open the breaker. Apart,
// streams can only fill their own connection, and the per-caller cap (gateway/streamlimit)
// keeps one caller from filling even that one.
type Conn struct {
	unary, stream         *grpc.ClientConn
	unaryPool, streamPool *pool // each connection's instances
}

// Invoke sends a unary call over the unary connection.
func (c *Conn) Invoke(ctx context.Context, method string, args, reply any, opts ...grpc.CallOption) error {
	return c.unary.Invoke(ctx, method, args, reply, opts...)
}

// NewStream opens a stream over the stream connection.
func (c *Conn) NewStream(ctx context.Context, desc *grpc.StreamDesc, method string, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return c.stream.NewStream(ctx, desc, method, opts...)
}

// state is the worse of the two connections' states: READY only when both are.
func (c *Conn) state() connectivity.State {
	u, s := c.unary.GetState(), c.stream.GetState()
	if u == connectivity.Idle || s == connectivity.Idle {
		c.unary.Connect()
		c.stream.Connect()
	}
	if u != connectivity.Ready {
		return u
	}
	return s
}

// instances counts the service's instances over both connections: an instance is ready when
// both connections have it READY and not ejected, ejected when either ejected it.
func (c *Conn) instances() Instances {
	u, s := c.unaryPool.snapshot(), c.streamPool.snapshot()
	out := Instances{Total: len(u)}
	for addr, us := range u {
		ss := s[addr]
		switch {
		case us == instanceEjected || ss == instanceEjected:
			out.Ejected++
		case us == instanceReady && ss == instanceReady:
			out.Ready++
		}
	}
	return out
}

func (c *Conn) close() error {
	return errors.Join(c.unary.Close(), c.stream.Close())
}

// Dial creates the connections of every upstream (addresses by service name: Conn) and starts
// connecting them. It does not wait for them to be READY: see Ready.
func Dial(upstreams map[string][]string, opts Options) (*Set, error) {
	s := &Set{conns: make(map[string]*Conn, len(upstreams))}
	for name := range upstreams {
		s.names = append(s.names, name)
	}
	sort.Strings(s.names)
	for _, name := range s.names {
		c, err := dialConn(name, upstreams[name], opts)
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("dialing upstream %s: %w", name, err)
		}
		s.conns[name] = c
	}
	return s, nil
}

// dialConn dials a service's two connections.
func dialConn(service string, addrs []string, opts Options) (*Conn, error) {
	c := &Conn{unaryPool: newPool(opts.Ejection, opts.now), streamPool: newPool(opts.Ejection, opts.now)}
	var err error
	if c.unary, err = dialOne(service, addrs, opts, c.unaryPool); err != nil {
		return nil, err
	}
	if c.stream, err = dialOne(service, addrs, opts, c.streamPool); err != nil {
		_ = c.unary.Close()
		return nil, err
	}
	return c, nil
}

func dialOne(service string, addrs []string, opts Options, p *pool) (*grpc.ClientConn, error) {
	if len(addrs) == 0 {
		return nil, errors.New("no addresses")
	}
	sc := ServiceConfig{LoadBalancingConfig: []map[string]struct{}{{balancerName: {}}}, RetryThrottling: opts.RetryThrottling}
	if !opts.DisableHealthCheck {
		sc.HealthCheckConfig = &HealthCheckConfig{}
	}
	for _, mc := range opts.MethodConfigs {
		for _, n := range mc.Name {
			if n.Service == service {
				sc.MethodConfig = append(sc.MethodConfig, mc)
				break
			}
		}
	}
	scJSON, err := sc.JSON()
	if err != nil {
		return nil, fmt.Errorf("rendering service config: %w", err)
	}
	// A manual resolver per connection: the static address list, no DNS, no service config from
	// the resolver (ours is the default); the pool rides along for the balancer.
	r := manual.NewBuilderWithScheme("upstream")
	state := resolver.State{}
	for _, a := range addrs {
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
	}
	r.InitialState(withPool(state, p))
	streamWin, connWin := opts.windows()
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(scJSON),
		grpc.WithIdleTimeout(0), // never idle: readiness reflects the real connection state
		grpc.WithStaticStreamWindowSize(streamWin),
		grpc.WithStaticConnWindowSize(connWin),
		grpc.WithChainUnaryInterceptor(opts.UnaryInterceptors...),
		grpc.WithChainStreamInterceptor(opts.StreamInterceptors...),
	}
	if kp, ok := opts.keepalive(); ok {
		dopts = append(dopts, grpc.WithKeepaliveParams(kp))
	}
	dopts = append(dopts, opts.DialOptions...)
	cc, err := grpc.NewClient("upstream:///"+strings.ToLower(service), dopts...)
	if err != nil {
		return nil, err
	}
	cc.Connect()
	return cc, nil
}

// Conn returns the connections of a service, or nil.
func (s *Set) Conn(service string) *Conn { return s.conns[service] }

// Names returns the upstream service names, sorted.
func (s *Set) Names() []string { return s.names }

// States returns each upstream's connectivity state ("READY", "CONNECTING",
// "TRANSIENT_FAILURE", ...) by service name: READY when both of its connections (Conn) are,
// else the state of one that is not.
func (s *Set) States() map[string]string {
	out := make(map[string]string, len(s.conns))
	for name, c := range s.conns {
		out[name] = c.state().String()
	}
	return out
}

// Instances returns each upstream's instance counts by service name: how many take calls
// (READY and not ejected on both of its connections), how many are ejected (on either), how
// many there are.
func (s *Set) Instances() map[string]Instances {
	out := make(map[string]Instances, len(s.conns))
	for name, c := range s.conns {
		out[name] = c.instances()
	}
	return out
}

// Ready reports whether the gateway can call every upstream: CanServe(s.Instances()).
func (s *Set) Ready() bool { return CanServe(s.Instances()) }

// CanServe reports whether instance counts (Set.Instances) let the gateway call every
// upstream: there is at least one, and each has an instance READY and not ejected.
func CanServe(instances map[string]Instances) bool {
	for _, c := range instances {
		if c.Ready == 0 {
			return false
		}
	}
	return len(instances) > 0
}

// WaitReadyAs waits until every connection whose counterpart in old is READY is READY too, so
// that a set replacing old serves no worse than it, or until ctx ends (an error naming the
// upstream that was not ready).
func (s *Set) WaitReadyAs(ctx context.Context, old *Set) error {
	for _, name := range s.names {
		prev, c := old.Conn(name), s.conns[name]
		if prev == nil {
			continue
		}
		for _, pair := range [...][2]*grpc.ClientConn{{prev.unary, c.unary}, {prev.stream, c.stream}} {
			if pair[0].GetState() != connectivity.Ready {
				continue
			}
			cc := pair[1]
			for st := cc.GetState(); st != connectivity.Ready; st = cc.GetState() {
				cc.Connect()
				if !cc.WaitForStateChange(ctx, st) {
					return fmt.Errorf("upstream %s still %s: %w", name, st, ctx.Err())
				}
			}
		}
	}
	return nil
}

// Close closes every connection. Safe to call twice.
func (s *Set) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for name, c := range s.conns {
			if err := c.close(); err != nil {
				errs = append(errs, fmt.Errorf("closing upstream %s: %w", name, err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
