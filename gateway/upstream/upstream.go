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
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
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
	// (the circuit breaker's go here). A unary interceptor calls its invoker, if at all, before
	// it returns (the unary chain reuses its invokers: chain.go).
	UnaryInterceptors  []grpc.UnaryClientInterceptor
	StreamInterceptors []grpc.StreamClientInterceptor
	// DialOptions are appended last (tests add a dialer; production may add TLS credentials).
	// Default: plaintext (insecure) transport credentials.
	DialOptions []grpc.DialOption
	// Credentials are the transport credentials of the services named (full names), TLS
	// usually (internal/tlsfiles): every connection of every pool of such a service, health
	// checks included, uses them, and each static address is verified under its own host (a
	// dns:/// name under that name). Default: none (plaintext).
	Credentials map[string]credentials.TransportCredentials
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
	conns map[string]*Conn            // the default pool of each service
	pools map[string]map[string]*Conn // the named pools, by service and pool name
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

// DefaultPool is the name of a service's own addresses among its pools (DialPools).
const DefaultPool = "default"

// poolSep separates the service from a named pool in a connection's target
// ("upstream:///shop.inventory.v1.inventoryservice@canary"); PoolOf reads it.
const poolSep = "@"

// Dial creates the connections of every upstream (addresses by service name: Conn) and starts
// connecting them. It does not wait for them to be READY: see Ready. It is DialPools with the
// default pool only.
func Dial(upstreams map[string][]string, opts Options) (*Set, error) {
	pools := make(map[string]map[string][]string, len(upstreams))
	for name, addrs := range upstreams {
		pools[name] = map[string][]string{DefaultPool: addrs}
	}
	return DialPools(pools, opts)
}

// DialPools creates the connections of every pool of every upstream (addresses by pool name, by
// service name): a Conn per pool, each with its own instances, health checks and outlier
// ejection. An address list is host:port pairs or one "dns:///host:port" name, re-resolved.
// Every service needs its DefaultPool; Set.Conn returns it, Set.Pool any pool.
func DialPools(upstreams map[string]map[string][]string, opts Options) (*Set, error) {
	s := &Set{conns: make(map[string]*Conn, len(upstreams)), pools: map[string]map[string]*Conn{}}
	for name := range upstreams {
		s.names = append(s.names, name)
	}
	sort.Strings(s.names)
	for _, name := range s.names {
		if _, ok := upstreams[name][DefaultPool]; !ok {
			_ = s.Close()
			return nil, fmt.Errorf("dialing upstream %s: no %s pool", name, DefaultPool)
		}
		for _, pn := range slices.Sorted(maps.Keys(upstreams[name])) {
			c, err := dialConn(name, pn, upstreams[name][pn], opts)
			if err != nil {
				_ = s.Close()
				return nil, fmt.Errorf("dialing upstream %s (pool %s): %w", name, pn, err)
			}
			if pn == DefaultPool {
				s.conns[name] = c
				continue
			}
			if s.pools[name] == nil {
				s.pools[name] = map[string]*Conn{}
			}
			s.pools[name][pn] = c
		}
	}
	return s, nil
}

// PoolOf returns the pool of a connection DialPools made ("" for a service's default pool), for
// the interceptors that keep state per pool (the circuit breakers): it reads the connection's
// target, so a call counts against the pool it was really sent to.
func PoolOf(cc *grpc.ClientConn) string {
	if cc == nil {
		return ""
	}
	t := cc.Target()
	if i := strings.LastIndex(t, poolSep); i >= 0 {
		return t[i+len(poolSep):]
	}
	return ""
}

// dialConn dials the two connections of a service's pool.
func dialConn(service, poolName string, addrs []string, opts Options) (*Conn, error) {
	c := &Conn{unaryPool: newPool(opts.Ejection, opts.now), streamPool: newPool(opts.Ejection, opts.now)}
	var err error
	if c.unary, err = dialOne(service, poolName, addrs, opts, c.unaryPool); err != nil {
		return nil, err
	}
	if c.stream, err = dialOne(service, poolName, addrs, opts, c.streamPool); err != nil {
		_ = c.unary.Close()
		return nil, err
	}
	return c, nil
}

func dialOne(service, poolName string, addrs []string, opts Options, p *pool) (*grpc.ClientConn, error) {
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
	// A resolver per connection, and the pool rides along for the balancer on every state:
	// for a static list a manual resolver (no DNS, no service config from the resolver: ours is
	// the default); for one dns:/// name grpc-go's DNS resolver, wrapped (dnsBuilder).
	var r resolver.Builder
	creds := opts.Credentials[service]
	var authority []grpc.DialOption
	if name, ok := dnsTarget(addrs); ok {
		r = &dnsBuilder{name: name, pool: p}
		if creds != nil {
			authority = append(authority, grpc.WithAuthority(name)) // the name the certificates carry
		}
	} else {
		m := manual.NewBuilderWithScheme("upstream")
		state := resolver.State{}
		for _, a := range addrs {
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{tlsAddress(a, creds != nil)}})
		}
		m.InitialState(withPool(state, p))
		r = m
	}
	streamWin, connWin := opts.windows()
	dopts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithResolvers(r),
		grpc.WithDefaultServiceConfig(scJSON),
		grpc.WithIdleTimeout(0), // never idle: readiness reflects the real connection state
		grpc.WithStaticStreamWindowSize(streamWin),
		grpc.WithStaticConnWindowSize(connWin),
		grpc.WithChainStreamInterceptor(opts.StreamInterceptors...),
	}
	if ic := chainUnary(opts.UnaryInterceptors); ic != nil { // chain.go: no allocation per level and call
		dopts = append(dopts, grpc.WithUnaryInterceptor(ic))
	}
	if kp, ok := opts.keepalive(); ok {
		dopts = append(dopts, grpc.WithKeepaliveParams(kp))
	}
	if creds != nil {
		dopts = append(dopts, grpc.WithTransportCredentials(creds))
		dopts = append(dopts, authority...)
	}
	dopts = append(dopts, opts.DialOptions...)
	target := "upstream:///" + strings.ToLower(service)
	if poolName != DefaultPool {
		target += poolSep + poolName
	}
	cc, err := grpc.NewClient(target, dopts...)
	if err != nil {
		return nil, err
	}
	cc.Connect()
	return cc, nil
}

// Conn returns the connections of a service's default pool, or nil.
func (s *Set) Conn(service string) *Conn { return s.conns[service] }

// Pool returns the connections of a service's pool (DefaultPool: Conn), or nil.
func (s *Set) Pool(service, pool string) *Conn {
	if pool == DefaultPool {
		return s.conns[service]
	}
	return s.pools[service][pool]
}

// HasPools reports whether service has pools beside its default one.
func (s *Set) HasPools(service string) bool { return len(s.pools[service]) > 0 }

// PoolInstances returns the instance counts of every pool of the services that have named
// pools, by service and pool name (the default pool's under DefaultPool). Readiness (Ready,
// Instances) counts the default pools only: a canary that is down refuses its own calls, not
// the gateway's.
func (s *Set) PoolInstances() map[string]map[string]Instances {
	out := make(map[string]map[string]Instances, len(s.pools))
	for name, pools := range s.pools {
		m := make(map[string]Instances, 1+len(pools))
		m[DefaultPool] = s.conns[name].instances()
		for pn, c := range pools {
			m[pn] = c.instances()
		}
		out[name] = m
	}
	return out
}

// Ready reports whether one of the pool's instances can take a call of the kind (a stream, or
// a unary call) now: READY (connected, SERVING to health checks) and not ejected, as /readyz
// counts them. The connection's own state is no guide: it can stay READY for a while after
// its last instance went away. One lock and a walk over the instances.
func (c *Conn) Ready(stream bool) bool {
	p := c.unaryPool
	if stream {
		p = c.streamPool
	}
	return p.counts().Ready > 0
}

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
		pools := append([]string{DefaultPool}, slices.Sorted(maps.Keys(s.pools[name]))...)
		for _, pn := range pools {
			prev, c := old.Pool(name, pn), s.Pool(name, pn)
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
						return fmt.Errorf("upstream %s (pool %s) still %s: %w", name, pn, st, ctx.Err())
					}
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
		for name, pools := range s.pools {
			for pn, c := range pools {
				if err := c.close(); err != nil {
					errs = append(errs, fmt.Errorf("closing upstream %s (pool %s): %w", name, pn, err))
				}
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}
