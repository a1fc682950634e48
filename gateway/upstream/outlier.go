package upstream

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/shopgate/gateway/deadline"
	"github.com/acme/shopgate/gateway/policy"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/balancer/roundrobin"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// Ejection configures outlier ejection: an upstream instance (one address) whose calls keep
// failing is taken out of the round robin for a while, then re-admitted half-open. It catches
// what health checks and keepalive cannot see soon enough (an instance that accepts calls and
// never answers them). The zero value means the defaults.
//
// A failure is an attempt that ends UNAVAILABLE, or DEADLINE_EXCEEDED under the route's own
// timeout (a client's shorter Grpc-Timeout is the client's doing: deadline.ClientBound). A
// success is an attempt that got an answer from the instance, whatever its status. A canceled
// attempt, or one that never reached the instance, counts neither way.
type Ejection struct {
	// Disabled turns ejection off: calls are picked round robin over the READY instances, and
	// the instance counts (Set.Instances) are still kept. Default: false (ejection on).
	Disabled bool
	// ConsecutiveFailures is how many failures in a row, with no success between them, eject
	// an instance. Default: 5.
	ConsecutiveFailures int
	// BaseEjectionTime is how long a first ejection lasts. An instance ejected again soon
	// after its re-admission stays out longer: its k-th ejection lasts k times
	// BaseEjectionTime (capped by MaxEjectionTime), and k goes down by one for every
	// BaseEjectionTime it then serves without being ejected. Default: 30s.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's length. Default: 300s (never less than
	// BaseEjectionTime).
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the share of a service's instances ejected at once; one
	// instance can always be ejected when there are two or more, and an instance is never
	// ejected while no other instance is READY and not ejected. Default: 50.
	MaxEjectionPercent int
}

// Defaults of Ejection.
const (
	DefaultConsecutiveFailures = 5
	DefaultBaseEjectionTime    = 30 * time.Second
	DefaultMaxEjectionTime     = 300 * time.Second
	DefaultMaxEjectionPercent  = 50
)

func (e Ejection) withDefaults() Ejection {
	if e.ConsecutiveFailures <= 0 {
		e.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if e.BaseEjectionTime <= 0 {
		e.BaseEjectionTime = DefaultBaseEjectionTime
	}
	if e.MaxEjectionTime <= 0 {
		e.MaxEjectionTime = DefaultMaxEjectionTime
	}
	e.MaxEjectionTime = max(e.MaxEjectionTime, e.BaseEjectionTime)
	if e.MaxEjectionPercent <= 0 {
		e.MaxEjectionPercent = DefaultMaxEjectionPercent
	}
	e.MaxEjectionPercent = min(e.MaxEjectionPercent, 100)
	return e
}

// Instances counts one upstream service's instances (addresses), for /readyz.
type Instances struct {
	// Ready is how many instances are READY (connected and, with health checking, SERVING)
	// and not ejected, on both of the service's connections (Conn): the ones that take unary
	// calls and streams.
	Ready int `json:"ready"`
	// Ejected is how many instances are ejected (Ejection) on either connection, READY or not.
	Ejected int `json:"ejected"`
	// Total is how many instances the service has.
	Total int `json:"total"`
}

// balancerName is the gateway's load-balancing policy: grpc-go's round_robin with outlier
// ejection on top (grpc-go's own outlier detection policy is internal to its xDS support).
const balancerName = "shopgate_round_robin_ejection"

func init() { balancer.Register(ejectionBuilder{}) }

// poolKey is the resolver.State attribute under which Dial hands a connection's *pool to its
// balancer: the balancer is built by grpc-go, and this is how Set reaches it.
type poolKey struct{}

// Instance states, in instance.state.
const (
	serving int32 = iota // picked round robin
	ejected              // not picked before instance.until; then the next pick is a probe
	probing              // one probe call in flight; not picked
)

// pool is one connection's instances, their ejection state and the clock; it lives as long
// as the connection and outlives the balancers grpc-go builds for it.
type pool struct {
	cfg Ejection
	now func() time.Time

	mu        sync.Mutex
	instances map[string]*instance // by address
}

func newPool(cfg Ejection, now func() time.Time) *pool {
	if now == nil {
		now = time.Now
	}
	return &pool{cfg: cfg.withDefaults(), now: now, instances: map[string]*instance{}}
}

// instance is one address of a service. Its state, failure count and ejection deadline are
// atomics (read on every pick, written by the calls' Done callbacks); the rest is under
// pool.mu.
type instance struct {
	pool  *pool
	addr  string
	state atomic.Int32
	fails atomic.Int32
	until atomic.Int64 // unix nanoseconds: the end of the current ejection

	ready      bool      // READY in the round robin's latest update (pool.mu)
	ejections  int       // k: the next ejection lasts k+1 times the base (pool.mu)
	admittedAt time.Time // the last re-admission (pool.mu)

	// The Done callbacks, built once so that a pick allocates nothing: [probe][kind], of a
	// normal call or of the probe, by the call's kind.
	done [2][kinds]func(balancer.DoneInfo)
}

// kind is what the pick knows of a call that decides how its end counts: a bit set.
type kind uint8

const (
	clientBound kind = 1 << iota // the client's own deadline bounds the call
	streaming                    // a server-streaming RPC: its route's timeout ends it
	kinds       = 4              // every combination
)

// kindOf reads the call's kind from its context: the deadline stage's mark and the route.
func kindOf(ctx context.Context) kind {
	var k kind
	if deadline.ClientBound(ctx) {
		k |= clientBound
	}
	if rt := policy.FromContext(ctx); rt != nil && rt.ServerStreaming {
		k |= streaming
	}
	return k
}

func (p *pool) instance(addr string) *instance {
	if in := p.instances[addr]; in != nil {
		return in
	}
	in := &instance{pool: p, addr: addr}
	for k := range kind(kinds) {
		in.done[0][k] = func(di balancer.DoneInfo) { in.finished(classify(di, k)) }
		in.done[1][k] = func(di balancer.DoneInfo) { in.probed(classify(di, k)) }
	}
	p.instances[addr] = in
	return in
}

// outcome is what one attempt says of the instance it went to.
type outcome int

const (
	neutral outcome = iota
	success
	failure
)

// classify reads an attempt's end: UNAVAILABLE fails; so does DEADLINE_EXCEEDED, unless the
// client's own deadline bound the call, the call was a stream that opened (its route's
// timeout is how a :watch ends: a success), or the attempt never got a stream on the
// instance's connection (it waited for one of the server's MaxConcurrentStreams slots until
// its deadline: the gateway's queue, not the instance's answer); any other answer from the
// instance succeeds; the rest (canceled, or never sent: grpc-go reports a pick whose
// transport was gone with an empty DoneInfo) is neutral.
func classify(di balancer.DoneInfo, k kind) outcome {
	if di.Err == nil {
		if di.BytesReceived {
			return success
		}
		return neutral
	}
	switch status.Code(di.Err) {
	case codes.Unavailable:
		return failure
	case codes.DeadlineExceeded:
		switch {
		case k&clientBound != 0, !di.BytesSent:
			return neutral
		case k&streaming != 0 && di.BytesReceived:
			return success
		}
		return failure
	case codes.Canceled:
		return neutral
	}
	if di.BytesReceived {
		return success
	}
	return neutral
}

// admit decides whether a pick may use the instance, and whether the call (of ctx) is its
// probe. A server stream is never the probe: it would hold the instance out for as long as it
// lives (a :watch, up to its route's timeout).
func (in *instance) admit(ctx context.Context) (ok, probe bool) {
	switch in.state.Load() {
	case serving:
		return true, false
	case ejected:
		if in.pool.now().UnixNano() < in.until.Load() || kindOf(ctx)&streaming != 0 ||
			!in.state.CompareAndSwap(ejected, probing) {
			return false, false
		}
		return true, true
	}
	return false, false // probing: one call at a time
}

// finished counts a normal call's outcome.
func (in *instance) finished(o outcome) {
	switch o {
	case success:
		if in.fails.Load() != 0 {
			in.fails.Store(0)
		}
	case failure:
		if in.state.Load() == serving && int(in.fails.Add(1)) >= in.pool.cfg.ConsecutiveFailures {
			in.pool.eject(in)
		}
	}
}

// probed ends the half-open probe: a success re-admits the instance, a failure ejects it
// again for longer, a neutral end lets the next pick probe.
func (in *instance) probed(o outcome) {
	p := in.pool
	switch o {
	case success:
		p.mu.Lock()
		p.readmitLocked(in)
		p.mu.Unlock()
	case failure:
		p.mu.Lock()
		if p.othersServingLocked(in) {
			p.ejectLocked(in)
		} else {
			p.readmitLocked(in)
		}
		p.mu.Unlock()
	default:
		in.until.Store(0)
		in.state.Store(ejected)
	}
}

// eject takes in out of the round robin unless the caps forbid it; then its failure count
// starts over.
func (p *pool) eject(in *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.Disabled || in.state.Load() != serving || int(in.fails.Load()) < p.cfg.ConsecutiveFailures {
		return // off, or another failure got here first
	}
	out := 0
	for _, o := range p.instances {
		if o.state.Load() != serving {
			out++
		}
	}
	allowed := min(max(1, len(p.instances)*p.cfg.MaxEjectionPercent/100), len(p.instances)-1)
	if out+1 > allowed || !p.othersServingLocked(in) {
		in.fails.Store(0)
		return
	}
	p.ejectLocked(in)
}

func (p *pool) othersServingLocked(in *instance) bool {
	for _, o := range p.instances {
		if o != in && o.ready && o.state.Load() == serving {
			return true
		}
	}
	return false
}

func (p *pool) ejectLocked(in *instance) {
	now := p.now()
	base := p.cfg.BaseEjectionTime
	if !in.admittedAt.IsZero() {
		in.ejections = max(0, in.ejections-int(now.Sub(in.admittedAt)/base))
	}
	in.ejections++
	d := min(base*time.Duration(in.ejections), p.cfg.MaxEjectionTime)
	in.fails.Store(0)
	in.until.Store(now.Add(d).UnixNano())
	in.state.Store(ejected)
}

func (p *pool) readmitLocked(in *instance) {
	in.admittedAt = p.now()
	in.fails.Store(0)
	in.state.Store(serving)
}

// ejectedAt reports whether in counts as ejected at now: out and not yet due for its probe,
// or probing.
func (in *instance) ejectedAt(now int64) bool {
	switch in.state.Load() {
	case ejected:
		return now < in.until.Load()
	case probing:
		return true
	}
	return false
}

// counts returns the pool's instance counts.
func (p *pool) counts() Instances {
	now := p.now().UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	c := Instances{Total: len(p.instances)}
	for _, in := range p.instances {
		switch {
		case in.ejectedAt(now):
			c.Ejected++
		case in.ready:
			c.Ready++
		}
	}
	return c
}

// The states of an instance in pool.snapshot.
const (
	instanceDown    = iota // not READY
	instanceReady          // READY and not ejected
	instanceEjected        // ejected, READY or not
)

// snapshot returns the state of each instance by address, for counts over two pools
// (Conn.instances).
func (p *pool) snapshot() map[string]int {
	now := p.now().UnixNano()
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make(map[string]int, len(p.instances))
	for addr, in := range p.instances {
		switch {
		case in.ejectedAt(now):
			out[addr] = instanceEjected
		case in.ready:
			out[addr] = instanceReady
		default:
			out[addr] = instanceDown
		}
	}
	return out
}

// update records which instances the round robin has READY (children: its latest picker's
// states) and returns the entries of the gateway's picker. When no READY instance is left
// serving, the READY ejected ones become due for their probe at once: an ejection never leaves
// a service with nothing to call.
func (p *pool) update(children []endpointsharding.ChildState) []entry {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, in := range p.instances {
		in.ready = false
	}
	var entries []entry
	for _, c := range children {
		if len(c.Endpoint.Addresses) == 0 || c.State.ConnectivityState != connectivity.Ready {
			continue
		}
		in := p.instances[c.Endpoint.Addresses[0].Addr]
		if in == nil {
			continue
		}
		in.ready = true
		entries = append(entries, entry{in: in, child: c.State.Picker})
	}
	for _, e := range entries {
		if e.in.state.Load() == serving {
			return entries
		}
	}
	for _, e := range entries {
		if e.in.state.Load() == ejected {
			e.in.until.Store(0)
		}
	}
	return entries
}

// setAddrs makes the pool's instances those of state's endpoints (the first address of each).
func (p *pool) setAddrs(state resolver.State) {
	p.mu.Lock()
	defer p.mu.Unlock()
	keep := make(map[string]bool, len(state.Endpoints))
	for _, ep := range state.Endpoints {
		if len(ep.Addresses) > 0 {
			keep[ep.Addresses[0].Addr] = true
			p.instance(ep.Addresses[0].Addr)
		}
	}
	for addr := range p.instances {
		if !keep[addr] {
			delete(p.instances, addr)
		}
	}
}

// ejectionBuilder builds the gateway's balancer: round_robin, whose pickers it wraps.
type ejectionBuilder struct{}

func (ejectionBuilder) Name() string { return balancerName }

func (ejectionBuilder) Build(cc balancer.ClientConn, opts balancer.BuildOptions) balancer.Balancer {
	b := &ejectionBalancer{}
	b.cc = &ejectionCC{ClientConn: cc, b: b}
	b.Balancer = balancer.Get(roundrobin.Name).Build(b.cc, opts)
	return b
}

// ejectionBalancer is round_robin (embedded) whose state updates pass through ejectionCC.
type ejectionBalancer struct {
	balancer.Balancer
	cc   *ejectionCC
	pool atomic.Pointer[pool]
}

func (b *ejectionBalancer) UpdateClientConnState(s balancer.ClientConnState) error {
	if p, _ := s.ResolverState.Attributes.Value(poolKey{}).(*pool); p != nil {
		p.setAddrs(s.ResolverState)
		b.pool.Store(p)
	}
	return b.Balancer.UpdateClientConnState(balancer.ClientConnState{ResolverState: s.ResolverState})
}

// ejectionCC is the ClientConn round_robin sees: it swaps each READY picker for the gateway's.
type ejectionCC struct {
	balancer.ClientConn
	b *ejectionBalancer
}

func (c *ejectionCC) UpdateState(s balancer.State) {
	if p := c.b.pool.Load(); p != nil {
		entries := p.update(endpointsharding.ChildStatesFromPicker(s.Picker))
		if s.ConnectivityState == connectivity.Ready && len(entries) > 0 && !p.cfg.Disabled {
			s.Picker = &picker{entries: entries}
		}
	}
	c.ClientConn.UpdateState(s)
}

// entry is one READY instance in a picker, with its own (pick_first) picker.
type entry struct {
	in    *instance
	child balancer.Picker
}

// picker picks round robin over the READY instances, skipping the ejected ones. It allocates
// nothing per pick; with two READY instances or more, each pick reads the call's kind from its
// context (two context lookups).
type picker struct {
	entries []entry
	next    atomic.Uint32
}

func (p *picker) Pick(info balancer.PickInfo) (balancer.PickResult, error) {
	n := uint32(len(p.entries))
	start := p.next.Add(1)
	for i := range n {
		e := &p.entries[(start+i)%n]
		ok, probe := e.in.admit(info.Ctx)
		switch {
		case !ok:
			continue
		case n == 1 && !probe:
			// The lone READY instance is never ejected: its calls need no counting, and
			// a service with one instance pays nothing for ejection.
			return e.child.Pick(info)
		}
		return e.pick(info, probe)
	}
	// Every READY instance is ejected or probing (those that are not READY cannot take the
	// call): send it anyway rather than fail it.
	return p.entries[start%n].pick(info, false)
}

func (e *entry) pick(info balancer.PickInfo, probe bool) (balancer.PickResult, error) {
	res, err := e.child.Pick(info)
	if err != nil {
		return res, err
	}
	p := 0
	if probe {
		p = 1
	}
	done := e.in.done[p][kindOf(info.Ctx)]
	if childDone := res.Done; childDone != nil {
		res.Done = func(di balancer.DoneInfo) { childDone(di); done(di) }
	} else {
		res.Done = done
	}
	return res, nil
}

// withPool adds p to a resolver state, for the balancer.
func withPool(s resolver.State, p *pool) resolver.State {
	s.Attributes = s.Attributes.WithValue(poolKey{}, p)
	return s
}
