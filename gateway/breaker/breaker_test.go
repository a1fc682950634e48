package breaker

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	inventoryService = "shop.inventory.v1.InventoryService"
	orderService     = "shop.order.v1.OrderService"
)

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func getItem(cc inventoryv1.InventoryServiceClient) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := cc.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "sku-1"})
	return err
}

func TestOpensAndFailsFastWithoutTouchingUpstream(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	b, err := New(Config{Scope: ScopeService, ConsecutiveFailures: 3, OpenTimeout: time.Hour}, Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	cc := dial(t, up.addr, b)
	inventory, orders := inventoryv1.NewInventoryServiceClient(cc), orderv1.NewOrderServiceClient(cc)
	up.code.Store(uint32(codes.Unavailable))
	// Only GetItem fails: the order calls share the server but not the breaker.
	for i := range 3 {
		if err := getItem(inventory); status.Code(err) != codes.Unavailable || strings.Contains(err.Error(), "circuit") {
			t.Fatalf("call %d: %v, want the upstream's UNAVAILABLE", i, err)
		}
	}
	if got := b.States()[inventoryService]; got != "open" {
		t.Fatalf("state after 3 failures = %q, want open", got)
	}
	reached := up.calls.Load()

	const rejected = 200
	start := time.Now()
	for range rejected {
		err := getItem(inventory)
		if st, _ := status.FromError(err); st.Code() != codes.Unavailable || st.Message() != "circuit open for "+inventoryService {
			t.Fatalf("open breaker returned %v", err)
		}
	}
	mean := time.Since(start) / rejected
	t.Logf("an open breaker fails a call in %v on average", mean)
	if mean > 500*time.Microsecond {
		t.Fatalf("an open breaker took %v per call, want well under 1ms", mean)
	}
	if up.calls.Load() != reached {
		t.Fatalf("upstream reached %d more times while the breaker was open", up.calls.Load()-reached)
	}

	// Another service through the same connection is unaffected.
	up.code.Store(uint32(codes.OK))
	if _, err := orders.GetOrder(context.Background(), &orderv1.GetOrderRequest{Id: "o-1"}); err != nil {
		t.Fatalf("order service call: %v", err)
	}
	states := b.States()
	if states[orderService] != "closed" || states[inventoryService] != "open" {
		t.Fatalf("States = %v, want order closed and inventory open", states)
	}
	if got := testutil.ToFloat64(b.state.WithLabelValues(inventoryService)); got != 2 {
		t.Fatalf("state gauge = %v, want 2 (open)", got)
	}
	if got := testutil.ToFloat64(b.reject.WithLabelValues(inventoryService)); got != rejected {
		t.Fatalf("rejected counter = %v, want %d", got, rejected)
	}
	if n := strings.Count(logs.String(), "circuit breaker state changed"); n != 1 {
		t.Fatalf("logged %d state changes, want 1:\n%s", n, logs)
	}
}

func TestWhatCountsAsFailure(t *testing.T) {
	t.Parallel()
	tests := []struct {
		code     codes.Code
		wantOpen bool
	}{
		{codes.Unavailable, true},
		{codes.DeadlineExceeded, true},
		{codes.Internal, true},
		{codes.Unknown, true},
		{codes.DataLoss, true},
		{codes.InvalidArgument, false},
		{codes.NotFound, false},
		{codes.PermissionDenied, false},
		{codes.Unauthenticated, false},
		{codes.FailedPrecondition, false},
		{codes.ResourceExhausted, false},
		{codes.AlreadyExists, false},
		{codes.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.code.String(), func(t *testing.T) {
			t.Parallel()
			b, err := New(Config{Scope: ScopeService, ConsecutiveFailures: 1, OpenTimeout: time.Hour}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			up := newUpstream(t)
			up.code.Store(uint32(tt.code))
			_ = getItem(inventoryv1.NewInventoryServiceClient(dial(t, up.addr, b)))
			if got := b.States()[inventoryService] == "open"; got != tt.wantOpen {
				t.Fatalf("after one %v: open = %v, want %v", tt.code, got, tt.wantOpen)
			}
		})
	}
}

// TestCallerCancellationDoesNotCount cancels calls that reached a slow upstream: the caller went
// away, the upstream did nothing wrong. The route's timeout (the connection's per-method
// timeout, as the gateway dials its upstreams), by contrast, counts; a client's shorter deadline
// on the call's context does not (gateway/deadline, the stage above the breaker, marks it from
// the route in the call's context).
func TestCallerCancellationDoesNotCount(t *testing.T) {
	t.Parallel()
	const short = 50 * time.Millisecond
	routeTimeout := func(d time.Duration) grpc.DialOption {
		return grpc.WithDefaultServiceConfig(fmt.Sprintf(`{"methodConfig":[{"name":[{"service":%q}],"timeout":%q}]}`,
			inventoryService, fmt.Sprintf("%gs", d.Seconds())))
	}
	tests := []struct {
		name     string
		route    time.Duration // the route's timeout
		client   time.Duration // the call context's deadline; 0: none
		cancel   bool          // cancel the call; otherwise let a deadline expire
		wantOpen bool
	}{
		{"cancelled by the caller", 10 * time.Second, 0, true, false},
		{"the route's timeout", short, 0, false, true},
		{"the route's timeout, before a client's longer deadline", short, 10 * time.Second, false, true},
		{"a client's deadline, shorter than the route's", 10 * time.Second, short, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b, err := New(Config{Scope: ScopeService, ConsecutiveFailures: 1, OpenTimeout: time.Hour}, Options{})
			if err != nil {
				t.Fatal(err)
			}
			up := newUpstream(t)
			up.block.Store(true)
			inventory := inventoryv1.NewInventoryServiceClient(dial(t, up.addr, b, routeTimeout(tt.route)))
			ctx, cancel := context.WithCancel(context.Background())
			if tt.client > 0 {
				ctx, cancel = context.WithTimeout(context.Background(), tt.client) // what grpc-gateway does with Grpc-Timeout
			}
			defer cancel()
			ctx = policy.NewContext(ctx, &policy.Route{Policy: policy.Policy{Timeout: tt.route}}) // as the router does
			errc := make(chan error, 1)
			go func() {
				_, err := inventory.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "s"})
				errc <- err
			}()
			if tt.cancel {
				pollUntil(t, 5*time.Second, "the call to reach the upstream", func() bool { return up.calls.Load() == 1 })
				cancel()
			}
			err = <-errc
			if err == nil {
				t.Fatal("call succeeded")
			}
			if got := b.States()[inventoryService] == "open"; got != tt.wantOpen {
				t.Fatalf("open = %v, want %v (err %v)", got, tt.wantOpen, err)
			}
		})
	}
}

// TestStoppedUpstreamOpensThenRecovers stops the upstream, checks the breaker opens, restarts
// it on the same address and waits (polling, tiny open timeout) for the breaker to close.
func TestStoppedUpstreamOpensThenRecovers(t *testing.T) {
	t.Parallel()
	b, err := New(Config{Scope: ScopeService, ConsecutiveFailures: 2, OpenTimeout: 30 * time.Millisecond}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	cc := dial(t, up.addr, b)
	inventory := inventoryv1.NewInventoryServiceClient(cc)
	if err := getItem(inventory); err != nil {
		t.Fatalf("healthy upstream: %v", err)
	}
	addr := up.addr
	up.stop()
	pollUntil(t, 5*time.Second, "the breaker to open", func() bool {
		_ = getItem(inventory)
		return b.States()[inventoryService] == "open"
	})
	if err := getItem(inventory); status.Code(err) != codes.Unavailable {
		t.Fatalf("open breaker: %v, want UNAVAILABLE", err)
	}

	up.start(t, addr)
	pollUntil(t, 10*time.Second, "the breaker to close", func() bool {
		return getItem(inventory) == nil && b.States()[inventoryService] == "closed"
	})
}

// TestHalfOpenLetsLimitedProbes: while the one probe of a half-open breaker is in flight, other
// calls fail at once; the probe's success closes the breaker.
func TestHalfOpenLetsLimitedProbes(t *testing.T) {
	t.Parallel()
	b, err := New(Config{Scope: ScopeService, ConsecutiveFailures: 1, OpenTimeout: 20 * time.Millisecond, HalfOpenMaxRequests: 1}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	inventory := inventoryv1.NewInventoryServiceClient(dial(t, up.addr, b))
	up.code.Store(uint32(codes.Internal))
	_ = getItem(inventory)
	pollUntil(t, 5*time.Second, "half-open", func() bool { return b.States()[inventoryService] == "half-open" })

	up.code.Store(uint32(codes.OK))
	up.block.Store(true)
	before := up.calls.Load()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	probe := make(chan error, 1)
	go func() {
		_, err := inventory.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "probe"})
		probe <- err
	}()
	pollUntil(t, 5*time.Second, "the probe to reach the upstream", func() bool { return up.calls.Load() == before+1 })
	err = getItem(inventory)
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "half-open") {
		t.Fatalf("second call while probing: %v, want UNAVAILABLE half-open", err)
	}
	<-probe // its deadline: a failure, the breaker opens again
	up.block.Store(false)
	pollUntil(t, 5*time.Second, "the breaker to close", func() bool {
		return getItem(inventory) == nil && b.States()[inventoryService] == "closed"
	})
}

func TestStreamCountsTheOpen(t *testing.T) {
	t.Parallel()
	b, err := New(Config{Scope: ScopeService, ConsecutiveFailures: 2, OpenTimeout: time.Hour}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	orders := orderv1.NewOrderServiceClient(dial(t, up.addr, b))
	watch := func() error {
		stream, err := orders.WatchOrder(context.Background(), &orderv1.WatchOrderRequest{Id: "o-1"})
		if err != nil {
			return err
		}
		_, err = stream.Recv()
		return err
	}
	if err := watch(); err != nil {
		t.Fatalf("healthy stream: %v", err)
	}
	up.stop()
	pollUntil(t, 5*time.Second, "the breaker to open on failed stream opens", func() bool {
		_ = watch()
		return b.States()[orderService] == "open"
	})
	_, err = orders.WatchOrder(context.Background(), &orderv1.WatchOrderRequest{Id: "o-1"})
	if st, _ := status.FromError(err); st.Code() != codes.Unavailable || st.Message() != "circuit open for "+orderService {
		t.Fatalf("stream open with an open breaker: %v", err)
	}
}

// TestScopeRPCIsTheDefault: one RPC's failures open its own breaker only; the service's other RPCs
// keep answering (a dependency's fault behind CreateOrder leaves GetOrder alone).
func TestScopeRPCIsTheDefault(t *testing.T) {
	t.Parallel()
	b, err := New(Config{ConsecutiveFailures: 1, OpenTimeout: time.Hour}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	inventory := inventoryv1.NewInventoryServiceClient(dial(t, up.addr, b))
	up.code.Store(uint32(codes.Unavailable))
	_ = getItem(inventory)
	up.code.Store(uint32(codes.OK))
	if _, err := inventory.ListItems(context.Background(), &inventoryv1.ListItemsRequest{}); err != nil {
		t.Fatalf("another RPC of the same service: %v", err)
	}
	states := b.States()
	if states["/"+inventoryService+"/GetItem"] != "open" || states["/"+inventoryService+"/ListItems"] != "closed" {
		t.Fatalf("States = %v", states)
	}
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	cfg := Config{Scope: ScopeService, ConsecutiveFailures: 1, OpenTimeout: time.Hour}
	b, err := New(cfg, Options{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	inventory := inventoryv1.NewInventoryServiceClient(dial(t, up.addr, b))
	up.code.Store(uint32(codes.Unavailable))
	_ = getItem(inventory)
	if err := b.Update(cfg); err != nil {
		t.Fatal(err)
	}
	if b.States()[inventoryService] != "open" {
		t.Fatal("Update with the same settings lost the breaker's state")
	}
	if err := b.Update(Config{ConsecutiveFailures: 3}); err != nil {
		t.Fatal(err)
	}
	up.code.Store(uint32(codes.OK))
	if err := getItem(inventory); err != nil {
		t.Fatalf("after Update with new settings: %v", err)
	}
	if err := b.Update(Config{FailureRatio: 2}); err == nil {
		t.Fatal("Update accepted an invalid config")
	}
}

func TestFailureRatio(t *testing.T) {
	t.Parallel()
	b, err := New(Config{Scope: ScopeService, ConsecutiveFailures: 1000, FailureRatio: 0.5, MinRequests: 10, OpenTimeout: time.Hour}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	inventory := inventoryv1.NewInventoryServiceClient(dial(t, up.addr, b))
	for i := range 10 { // alternate: 5 failures of 10 requests reaches the ratio at the 10th
		if b.States()[inventoryService] == "open" {
			t.Fatalf("open after %d requests, before MinRequests", i)
		}
		if i%2 == 0 {
			up.code.Store(uint32(codes.OK))
		} else {
			up.code.Store(uint32(codes.Unavailable))
		}
		_ = getItem(inventory)
	}
	if b.States()[inventoryService] != "open" {
		t.Fatal("not open at a 50% failure ratio over MinRequests")
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{FailureRatio: -0.1}, {FailureRatio: 1.5}, {OpenTimeout: -time.Second}, {Interval: -time.Second}} {
		if _, err := New(cfg, Options{}); err == nil || !strings.HasPrefix(err.Error(), "creating circuit breakers: ") {
			t.Fatalf("New(%+v) error = %v", cfg, err)
		}
	}
	b, err := New(Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	got := b.current.Load().cfg
	want := Config{Scope: ScopeRPC, ConsecutiveFailures: 5, MinRequests: 20, Interval: time.Minute, OpenTimeout: 10 * time.Second, HalfOpenMaxRequests: 1}
	if got != want {
		t.Fatalf("defaults = %+v, want %+v", got, want)
	}
}

// BenchmarkUnaryInterceptor measures the breaker's cost on a call through a closed breaker (the
// invoker stands for the network call and does nothing).
func BenchmarkUnaryInterceptor(b *testing.B) {
	br, err := New(Config{Scope: ScopeService}, Options{})
	if err != nil {
		b.Fatal(err)
	}
	intercept := br.UnaryClientInterceptor()
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = intercept(ctx, "/shop.order.v1.OrderService/GetOrder", nil, nil, nil, invoker)
	}
}

// TestQueuedForAStreamSlotDoesNotCount fills the upstream's only stream slot
// (MaxConcurrentStreams 1) with a stream the upstream holds open: unary calls and streams that
// then run out of their route's timeout queued in grpc-go for a slot never reached the
// upstream, and leave the breaker closed however many there are. Once the slot is free, the
// same timeout on calls that reached the hanging upstream opens it.
func TestQueuedForAStreamSlotDoesNotCount(t *testing.T) {
	t.Parallel()
	const failures = 2
	b, err := New(Config{Scope: ScopeService, ConsecutiveFailures: failures, OpenTimeout: time.Hour}, Options{}) // as in the incident: the streams' and the unary calls' breaker is one
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t, grpc.MaxConcurrentStreams(1))
	up.block.Store(true)
	cc := dial(t, up.addr, b)
	inventory, orders := inventoryv1.NewInventoryServiceClient(cc), orderv1.NewOrderServiceClient(cc)

	holdCtx, release := context.WithCancel(context.Background())
	defer release()
	hold, err := orders.WatchOrder(holdCtx, &orderv1.WatchOrderRequest{Id: "o-1"})
	if err != nil {
		t.Fatal(err)
	}
	pollUntil(t, 5*time.Second, "the holding stream to reach the upstream", func() bool { return up.calls.Load() == 1 })

	route := func() (context.Context, context.CancelFunc) {
		// A deadline that is not the client's (no route says it is sooner than the route's
		// timeout): it counts as the route's, as grpc-go's service config timeout would.
		return context.WithTimeout(context.Background(), 50*time.Millisecond)
	}
	calls := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"unary", func(ctx context.Context) error {
			_, err := inventory.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "s"})
			return err
		}},
		{"stream", func(ctx context.Context) error {
			_, err := orders.WatchOrder(ctx, &orderv1.WatchOrderRequest{Id: "o-2"})
			return err
		}},
	}
	for _, c := range calls {
		for i := range 2 * failures {
			ctx, cancel := route()
			err := c.call(ctx)
			cancel()
			if status.Code(err) != codes.DeadlineExceeded {
				t.Fatalf("%s %d queued behind the held slot: %v, want DEADLINE_EXCEEDED", c.name, i, err)
			}
		}
	}
	if got := up.calls.Load(); got != 1 {
		t.Fatalf("the upstream saw %d calls, want only the holding stream", got)
	}
	for name, st := range b.States() {
		if st != "closed" {
			t.Fatalf("breaker %s is %s after calls that only waited for a slot, want closed", name, st)
		}
	}

	release()
	_, _ = hold.Recv() // the held stream ends: its slot is free
	for range failures {
		ctx, cancel := route()
		err := calls[0].call(ctx)
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("call to the hanging upstream: %v, want DEADLINE_EXCEEDED", err)
		}
	}
	if got := b.States()[inventoryService]; got != "open" {
		t.Fatalf("after %d route timeouts at the upstream: %s, want open", failures, got)
	}
}

// TestOwnClientErrorsDoNotCount: an error grpc-go raises inside the gateway's client before any
// stream exists (here a metadata value it refuses to send: INTERNAL) is not the upstream's
// doing and never opens the breaker; the same code from the upstream does.
func TestOwnClientErrorsDoNotCount(t *testing.T) {
	t.Parallel()
	b, err := New(Config{ConsecutiveFailures: 1, OpenTimeout: time.Hour}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	up := newUpstream(t)
	inventory := inventoryv1.NewInventoryServiceClient(dial(t, up.addr, b))
	if err := getItem(inventory); err != nil { // the connection is READY
		t.Fatal(err)
	}
	for range 3 {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-user-id", "jos\u00e9")
		_, err := inventory.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "s"})
		if status.Code(err) != codes.Internal {
			t.Fatalf("a non-ASCII metadata value: %v, want grpc-go's own INTERNAL", err)
		}
	}
	name := "/" + inventoryService + "/GetItem"
	if st := b.States()[name]; st != "closed" {
		t.Fatalf("after the client's own errors the breaker is %q, want closed", st)
	}
	up.code.Store(uint32(codes.Internal))
	_ = getItem(inventory)
	if st := b.States()[name]; st != "open" {
		t.Fatalf("after the upstream's INTERNAL the breaker is %q, want open", st)
	}
}
