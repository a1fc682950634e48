// Package upstream holds the gateway's gRPC client connections: one *grpc.ClientConn per
// upstream service, over real connections, balanced round robin over the service's addresses
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
	conns map[string]*grpc.ClientConn
	pools map[string]*pool // each connection's instances
	names []string

	closeOnce sync.Once
	closeErr  error
}

// Dial creates one connection per upstream (addresses by service name) and starts connecting
// them. It does not wait for them to be READY: see Ready.
func Dial(upstreams map[string][]string, opts Options) (*Set, error) {
	s := &Set{conns: make(map[string]*grpc.ClientConn, len(upstreams)), pools: make(map[string]*pool, len(upstreams))}
	for name := range upstreams {
		s.names = append(s.names, name)
	}
	sort.Strings(s.names)
	for _, name := range s.names {
		p := newPool(opts.Ejection, opts.now)
		cc, err := dialOne(name, upstreams[name], opts, p)
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("dialing upstream %s: %w", name, err)
		}
		s.conns[name], s.pools[name] = cc, p
	}
	return s, nil
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

// Conn returns the connection of a service, or nil.
func (s *Set) Conn(service string) *grpc.ClientConn { return s.conns[service] }

// Names returns the upstream service names, sorted.
func (s *Set) Names() []string { return s.names }

// States returns each upstream's connectivity state ("READY", "CONNECTING",
// "TRANSIENT_FAILURE", ...) by service name.
func (s *Set) States() map[string]string {
	out := make(map[string]string, len(s.conns))
	for name, cc := range s.conns {
		st := cc.GetState()
		if st == connectivity.Idle {
			cc.Connect()
		}
		out[name] = st.String()
	}
	return out
}

// Instances returns each upstream's instance counts by service name: how many take calls
// (READY and not ejected), how many are ejected, how many there are.
func (s *Set) Instances() map[string]Instances {
	out := make(map[string]Instances, len(s.pools))
	for name, p := range s.pools {
		out[name] = p.counts()
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
		if prev := old.Conn(name); prev == nil || prev.GetState() != connectivity.Ready {
			continue
		}
		cc := s.conns[name]
		for st := cc.GetState(); st != connectivity.Ready; st = cc.GetState() {
			cc.Connect()
			if !cc.WaitForStateChange(ctx, st) {
				return fmt.Errorf("upstream %s still %s: %w", name, st, ctx.Err())
			}
		}
	}
	return nil
}

// Close closes every connection. Safe to call twice.
func (s *Set) Close() error {
	s.closeOnce.Do(func() {
		var errs []error
		for name, cc := range s.conns {
			if err := cc.Close(); err != nil {
				errs = append(errs, fmt.Errorf("closing upstream %s: %w", name, err))
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
