package upstream

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/deadline"
	"github.com/acme/shopgate/gateway/policy"
	"google.golang.org/grpc"
	"google.golang.org/grpc/balancer"
	"google.golang.org/grpc/balancer/endpointsharding"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/status"
)

// clock is a fake clock for the ejection times.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// fakeSubConn names the address a pick went to.
type fakeSubConn struct {
	balancer.SubConn
	addr string
}

type fakePicker struct{ sc *fakeSubConn }

func (p fakePicker) Pick(balancer.PickInfo) (balancer.PickResult, error) {
	return balancer.PickResult{SubConn: p.sc}, nil
}

// harness is a pool of instances and the gateway's picker over the READY ones.
type harness struct {
	t      *testing.T
	clock  *clock
	pool   *pool
	picker *picker
	ready  map[string]bool
	addrs  []string
}

func newHarness(t *testing.T, cfg Ejection, addrs ...string) *harness {
	h := &harness{t: t, clock: &clock{t: time.Unix(1_000_000, 0)}, ready: map[string]bool{}, addrs: addrs}
	h.pool = newPool(cfg, h.clock.now)
	var state resolver.State
	for _, a := range addrs {
		state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}})
		h.ready[a] = true
	}
	h.pool.setAddrs(state)
	h.update()
	return h
}

// update hands the pool the round robin's view: each address READY or CONNECTING.
func (h *harness) update() {
	var children []endpointsharding.ChildState
	for _, a := range h.addrs {
		st := balancer.State{ConnectivityState: connectivity.Connecting}
		if h.ready[a] {
			st = balancer.State{ConnectivityState: connectivity.Ready, Picker: fakePicker{&fakeSubConn{addr: a}}}
		}
		children = append(children, endpointsharding.ChildState{Endpoint: resolver.Endpoint{Addresses: []resolver.Address{{Addr: a}}}, State: st})
	}
	h.picker = &picker{entries: h.pool.update(children)}
}

// call picks an instance and ends the call with err (nil: an answer).
func (h *harness) call(ctx context.Context, err error) string {
	h.t.Helper()
	res, perr := h.picker.Pick(balancer.PickInfo{Ctx: ctx})
	if perr != nil {
		h.t.Fatal(perr)
	}
	if res.Done != nil {
		res.Done(balancer.DoneInfo{Err: err, BytesSent: true, BytesReceived: err == nil || status.Code(err) != codes.DeadlineExceeded})
	}
	return res.SubConn.(*fakeSubConn).addr
}

// callTo calls until a call lands on addr (at most one round), ending that one with err.
func (h *harness) callTo(addr string, err error) {
	h.t.Helper()
	for range len(h.addrs) + 1 {
		res, perr := h.picker.Pick(balancer.PickInfo{Ctx: context.Background()})
		if perr != nil {
			h.t.Fatal(perr)
		}
		if res.SubConn.(*fakeSubConn).addr == addr {
			if res.Done != nil { // nil for a lone instance: never ejected, never counted
				res.Done(balancer.DoneInfo{Err: err, BytesSent: true, BytesReceived: err == nil})
			}
			return
		}
		res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
	h.t.Fatalf("no call went to %s", addr)
}

// spread makes n calls that succeed and counts them by address.
func (h *harness) spread(n int) map[string]int {
	seen := map[string]int{}
	for range n {
		seen[h.call(context.Background(), nil)]++
	}
	return seen
}

var (
	errUnavailable = status.Error(codes.Unavailable, "connection refused")
	errDeadline    = status.Error(codes.DeadlineExceeded, "context deadline exceeded")
	errNotFound    = status.Error(codes.NotFound, "no such item")
)

// clientBoundCtx is the context of a call that the client's own shorter deadline bounds, as
// the deadline stage marks it.
func clientBoundCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond*50)
	t.Cleanup(cancel)
	ctx = policy.NewContext(ctx, &policy.Route{Policy: policy.Policy{Timeout: time.Hour}})
	var got context.Context
	_ = deadline.Unary(ctx, "/m", nil, nil, nil, func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		got = ctx
		return nil
	})
	if !deadline.ClientBound(got) {
		t.Fatal("context not client-bound")
	}
	return got
}

func TestEjectionCounting(t *testing.T) {
	tests := []struct {
		name        string
		errs        []error // the outcomes of consecutive calls to instance a
		clientBound bool
		wantEjected bool
	}{
		{name: "five UNAVAILABLE in a row eject", errs: rep(errUnavailable, 5), wantEjected: true},
		{name: "five route timeouts in a row eject", errs: rep(errDeadline, 5), wantEjected: true},
		{name: "four failures do not", errs: rep(errUnavailable, 4)},
		{name: "a success starts the count over", errs: append(append(rep(errUnavailable, 4), nil), rep(errUnavailable, 4)...)},
		{name: "an error answer is a success", errs: append(append(rep(errUnavailable, 4), errNotFound), rep(errUnavailable, 4)...)},
		{name: "canceled calls count neither way", errs: append(append(rep(errUnavailable, 3), rep(status.Error(codes.Canceled, "gone"), 3)...), rep(errUnavailable, 2)...), wantEjected: true},
		{name: "timeouts of the client's deadline do not count", errs: rep(errDeadline, 10), clientBound: true},
		{name: "UNAVAILABLE counts under the client's deadline", errs: rep(errUnavailable, 5), clientBound: true, wantEjected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Ejection{}, "a", "b")
			ctx := context.Background()
			if tt.clientBound {
				ctx = clientBoundCtx(t)
			}
			for _, err := range tt.errs {
				for h.call(ctx, nil) != "b" { // the next pick goes to a: fail it
				}
				in := h.pool.instances["a"]
				if ok, _ := in.admit(ctx); !ok {
					t.Fatal("a ejected too soon")
				}
				res, _ := h.picker.Pick(balancer.PickInfo{Ctx: ctx})
				if got := res.SubConn.(*fakeSubConn).addr; got != "a" {
					t.Fatalf("picked %s, want a", got)
				}
				res.Done(balancer.DoneInfo{Err: err, BytesSent: true, BytesReceived: err == nil || status.Code(err) == codes.NotFound})
			}
			got := h.pool.counts()
			want := Instances{Ready: 2, Total: 2}
			if tt.wantEjected {
				want = Instances{Ready: 1, Ejected: 1, Total: 2}
			}
			if got != want {
				t.Errorf("counts = %+v, want %+v", got, want)
			}
			if seen := h.spread(10); tt.wantEjected && (seen["a"] != 0 || seen["b"] != 10) {
				t.Errorf("calls = %v, want all on b", seen)
			}
		})
	}
}

func rep(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

func TestEjectionCaps(t *testing.T) {
	tests := []struct {
		name        string
		cfg         Ejection
		addrs       []string
		notReady    []string // instances the round robin does not have READY
		failing     []string // each fails 5 times in a row, in this order
		wantEjected int
	}{
		{name: "a lone instance is never ejected", addrs: []string{"a"}, failing: []string{"a"}},
		{name: "one of two", addrs: []string{"a", "b"}, failing: []string{"a", "b"}, wantEjected: 1},
		{name: "never the last one serving", addrs: []string{"a", "b"}, notReady: []string{"b"}, failing: []string{"a"}},
		{name: "50% of four", addrs: []string{"a", "b", "c", "d"}, failing: []string{"a", "b", "c"}, wantEjected: 2},
		{name: "one of three at 10%", cfg: Ejection{MaxEjectionPercent: 10}, addrs: []string{"a", "b", "c"}, failing: []string{"a", "b"}, wantEjected: 1},
		{name: "100% still leaves one", cfg: Ejection{MaxEjectionPercent: 100}, addrs: []string{"a", "b", "c"}, failing: []string{"a", "b", "c"}, wantEjected: 2},
		{name: "disabled", cfg: Ejection{Disabled: true}, addrs: []string{"a", "b"}, failing: []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.cfg, tt.addrs...)
			for _, a := range tt.notReady {
				h.ready[a] = false
			}
			h.update()
			for _, a := range tt.failing {
				for range 5 {
					if tt.cfg.Disabled {
						h.pool.instances[a].finished(failure) // a disabled pool has no picker
						continue
					}
					h.callTo(a, errUnavailable)
				}
			}
			if tt.cfg.Disabled {
				h.pool.mu.Lock()
				for _, in := range h.pool.instances {
					if in.state.Load() != serving {
						t.Errorf("%s ejected with ejection disabled", in.addr)
					}
				}
				h.pool.mu.Unlock()
			}
			if got := h.pool.counts().Ejected; got != tt.wantEjected && !tt.cfg.Disabled {
				t.Errorf("ejected = %d, want %d", got, tt.wantEjected)
			}
		})
	}
}

// TestHalfOpen follows one instance through ejection, probe and re-admission on a fake clock.
func TestHalfOpen(t *testing.T) {
	const base = 10 * time.Second
	eject := func(h *harness) {
		t.Helper()
		for range 5 {
			h.callTo("a", errUnavailable)
		}
		if h.pool.instances["a"].state.Load() != ejected {
			t.Fatal("a not ejected")
		}
	}
	// untilDue returns how long a stays out: the clock is moved to the end of its ejection.
	untilDue := func(h *harness) time.Duration {
		t.Helper()
		d := time.Duration(h.pool.instances["a"].until.Load() - h.clock.now().UnixNano())
		h.clock.advance(d - time.Millisecond)
		if seen := h.spread(4); seen["a"] != 0 {
			t.Fatalf("a picked %d times a millisecond before its ejection ends", seen["a"])
		}
		h.clock.advance(time.Millisecond)
		return d
	}
	// probe picks until the probe goes to a, checks that no other call does while it is in
	// flight, and ends it with err.
	probe := func(h *harness, err error) {
		t.Helper()
		var res balancer.PickResult
		for {
			res, _ = h.picker.Pick(balancer.PickInfo{Ctx: context.Background()})
			if res.SubConn.(*fakeSubConn).addr == "a" {
				break
			}
			res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
		}
		if got := h.pool.counts(); got.Ejected != 1 {
			t.Errorf("while probing counts = %+v, want a still ejected", got)
		}
		if seen := h.spread(6); seen["a"] != 0 {
			t.Errorf("a took %d calls besides its probe", seen["a"])
		}
		res.Done(balancer.DoneInfo{Err: err, BytesSent: true, BytesReceived: err == nil})
	}

	h := newHarness(t, Ejection{BaseEjectionTime: base, MaxEjectionTime: 25 * time.Second}, "a", "b")
	eject(h)
	if d := untilDue(h); d != base {
		t.Errorf("first ejection %v, want %v", d, base)
	}
	probe(h, errDeadline) // fails: out again, twice as long
	if d := untilDue(h); d != 2*base {
		t.Errorf("second ejection %v, want %v", d, 2*base)
	}
	probe(h, status.Error(codes.Canceled, "client gone")) // neutral: the next pick probes
	probe(h, errUnavailable)                              // out again, capped
	if d := untilDue(h); d != 25*time.Second {
		t.Errorf("third ejection %v, want the 25s cap", d)
	}
	// A server stream is never the probe: it goes elsewhere, and the next unary call probes.
	watch := policy.NewContext(context.Background(), &policy.Route{ServerStreaming: true})
	for range 4 {
		if got := h.call(watch, nil); got != "b" {
			t.Fatalf("a stream went to %s while a was due for its probe", got)
		}
	}
	probe(h, nil) // re-admitted
	if got := h.pool.counts(); got != (Instances{Ready: 2, Total: 2}) {
		t.Errorf("after a successful probe counts = %+v", got)
	}
	if seen := h.spread(10); seen["a"] != 5 || seen["b"] != 5 {
		t.Errorf("after re-admission calls = %v, want even", seen)
	}
	// Serving 2 base times lowers the next ejection's multiplier from 4 to 2.
	h.clock.advance(2 * base)
	eject(h)
	if d := untilDue(h); d != 2*base {
		t.Errorf("ejection after serving 2 base times = %v, want %v", d, 2*base)
	}
	probe(h, nil)
	// Long enough in service, it is a first ejection again.
	h.clock.advance(time.Hour)
	eject(h)
	if d := untilDue(h); d != base {
		t.Errorf("ejection after an hour in service = %v, want %v", d, base)
	}
}

// TestLastServingReadmits checks that an ejection never leaves a service with nothing to call:
// when the other instances stop being READY, the ejected one is probed at once.
func TestLastServingReadmits(t *testing.T) {
	h := newHarness(t, Ejection{}, "a", "b")
	for range 5 {
		h.callTo("a", errUnavailable)
	}
	if got := h.pool.counts(); got != (Instances{Ready: 1, Ejected: 1, Total: 2}) {
		t.Fatalf("counts = %+v", got)
	}
	h.ready["b"] = false
	h.update()
	if got := h.pool.counts(); got != (Instances{Ready: 1, Total: 2}) {
		t.Errorf("with b gone counts = %+v, want a due for its probe", got)
	}
	if got := h.call(context.Background(), nil); got != "a" {
		t.Errorf("picked %s", got)
	}
	if got := h.pool.instances["a"].state.Load(); got != serving {
		t.Errorf("a state %d after a successful probe, want serving", got)
	}
	// A probe that fails with no other instance serving re-admits too: there is nowhere else.
	h.ready["b"] = true
	h.update()
	for range 5 {
		h.callTo("a", errUnavailable)
	}
	h.ready["b"] = false
	h.update()
	h.call(context.Background(), errUnavailable)
	if got := h.pool.instances["a"].state.Load(); got != serving {
		t.Errorf("a state %d, want serving: it is the only READY instance", got)
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		di   balancer.DoneInfo
		kind kind
		want outcome
	}{
		{"answered OK", balancer.DoneInfo{BytesSent: true, BytesReceived: true}, 0, success},
		{"never sent (transport gone at pick)", balancer.DoneInfo{}, 0, neutral},
		{"answered with an error", balancer.DoneInfo{Err: errNotFound, BytesSent: true, BytesReceived: true}, 0, success},
		{"UNAVAILABLE", balancer.DoneInfo{Err: errUnavailable, BytesSent: true}, 0, failure},
		{"UNAVAILABLE, client deadline", balancer.DoneInfo{Err: errUnavailable}, clientBound, failure},
		{"route timeout", balancer.DoneInfo{Err: errDeadline, BytesSent: true}, 0, failure},
		{"route timeout after headers", balancer.DoneInfo{Err: errDeadline, BytesSent: true, BytesReceived: true}, 0, failure},
		{"client timeout", balancer.DoneInfo{Err: errDeadline, BytesSent: true}, clientBound, neutral},
		{"route timeout waiting for a stream slot", balancer.DoneInfo{Err: errDeadline}, 0, neutral},
		{"stream timed out waiting for a stream slot", balancer.DoneInfo{Err: errDeadline}, streaming, neutral},
		{"stream ended by its route timeout", balancer.DoneInfo{Err: errDeadline, BytesSent: true, BytesReceived: true}, streaming, success},
		{"stream that never opened", balancer.DoneInfo{Err: errDeadline, BytesSent: true}, streaming, failure},
		{"stream ended by the client's timeout", balancer.DoneInfo{Err: errDeadline, BytesSent: true}, streaming | clientBound, neutral},
		{"canceled", balancer.DoneInfo{Err: status.Error(codes.Canceled, "x"), BytesSent: true, BytesReceived: true}, 0, neutral},
		{"refused in the client", balancer.DoneInfo{Err: status.Error(codes.Internal, "bad metadata")}, 0, neutral},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := classify(tt.di, tt.kind); got != tt.want {
				t.Errorf("classify = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestKindOf(t *testing.T) {
	streamRoute := &policy.Route{ServerStreaming: true, Policy: policy.Policy{Timeout: time.Hour}}
	tests := []struct {
		name string
		ctx  context.Context
		want kind
	}{
		{"no route", context.Background(), 0},
		{"unary route", policy.NewContext(context.Background(), &policy.Route{}), 0},
		{"streaming route", policy.NewContext(context.Background(), streamRoute), streaming},
		{"client deadline", clientBoundCtx(t), clientBound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := kindOf(tt.ctx); got != tt.want {
				t.Errorf("kindOf = %b, want %b", got, tt.want)
			}
		})
	}
}

func TestPickCost(t *testing.T) {
	tests := []struct {
		name     string
		addrs    []string
		wantDone bool
	}{
		{"a lone instance is not counted", []string{"a"}, false},
		{"three instances are", []string{"a", "b", "c"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, Ejection{}, tt.addrs...)
			info := balancer.PickInfo{Ctx: policy.NewContext(context.Background(), &policy.Route{})}
			if res, _ := h.picker.Pick(info); (res.Done != nil) != tt.wantDone {
				t.Errorf("Done set %v, want %v", res.Done != nil, tt.wantDone)
			}
			if n := testing.AllocsPerRun(1000, func() {
				res, _ := h.picker.Pick(info)
				if res.Done != nil {
					res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
				}
			}); n != 0 {
				t.Errorf("%v allocations per pick and done", n)
			}
		})
	}
}

// BenchmarkPick measures a pick and its Done on a context as deep as a gateway call's (the
// route near the bottom, a dozen layers above it), where kindOf walks the chain twice.
func BenchmarkPick(b *testing.B) {
	h := newHarness(&testing.T{}, Ejection{}, "a", "b", "c")
	ctx := policy.NewContext(context.Background(), &policy.Route{})
	type layer int
	for i := range 12 {
		ctx = context.WithValue(ctx, layer(i), i)
	}
	info := balancer.PickInfo{Ctx: ctx}
	b.ReportAllocs()
	for b.Loop() {
		res, _ := h.picker.Pick(info)
		res.Done(balancer.DoneInfo{BytesSent: true, BytesReceived: true})
	}
}
