package upstream_test

import (
	"context"
	"encoding/json"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/upstream"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const svc = "shop.inventory.v1.InventoryService"

// backend is a real gRPC server answering GetItem with its name; failFirst makes the first
// failFirst calls fail with UNAVAILABLE; while hang is set, calls wait for their deadline.
type backend struct {
	inventoryv1.UnimplementedInventoryServiceServer
	name      string
	addr      string
	health    *health.Server
	calls     atomic.Int64
	failFirst int64
	hang      atomic.Bool
}

func (b *backend) GetItem(ctx context.Context, _ *inventoryv1.GetItemRequest) (*inventoryv1.Item, error) {
	if b.hang.Load() {
		<-ctx.Done()
		return nil, status.FromContextError(ctx.Err()).Err()
	}
	if n := b.calls.Add(1); n <= b.failFirst {
		return nil, status.Error(codes.Unavailable, "warming up")
	}
	return &inventoryv1.Item{Name: b.name}, nil
}

func start(t *testing.T, name string, failFirst int64, opts ...grpc.ServerOption) *backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &backend{name: name, addr: ln.Addr().String(), health: health.NewServer(), failFirst: failFirst}
	gs := grpc.NewServer(opts...)
	inventoryv1.RegisterInventoryServiceServer(gs, b)
	healthpb.RegisterHealthServer(gs, b.health)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = gs.Serve(ln) }()
	t.Cleanup(func() { gs.Stop(); b.health.Shutdown(); wg.Wait() })
	return b
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dial(t *testing.T, addrs []string, opts upstream.Options) *upstream.Set {
	t.Helper()
	set, err := upstream.Dial(map[string][]string{svc: addrs}, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = set.Close() })
	return set
}

func TestRoundRobinWithHealthChecks(t *testing.T) {
	a, b := start(t, "a", 0), start(t, "b", 0)
	set := dial(t, []string{a.addr, b.addr}, upstream.Options{})
	poll(t, "READY", set.Ready)
	client := inventoryv1.NewInventoryServiceClient(set.Conn(svc))
	callMany := func(n int) map[string]int {
		seen := map[string]int{}
		for range n {
			item, err := client.GetItem(context.Background(), &inventoryv1.GetItemRequest{})
			if err != nil {
				t.Fatal(err)
			}
			seen[item.GetName()]++
		}
		return seen
	}
	poll(t, "both backends to take calls", func() bool { s := callMany(10); return s["a"] > 0 && s["b"] > 0 })

	// A backend that reports NOT_SERVING gets no more calls.
	b.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	poll(t, "traffic to leave the unhealthy backend", func() bool { return callMany(10)["b"] == 0 })
	if seen := callMany(20); seen["b"] != 0 || seen["a"] != 20 {
		t.Errorf("calls = %v, want all on the healthy backend", seen)
	}
}

// TestStreamsDoNotQueueUnaryCalls fills every stream slot the upstream allows
// (MaxConcurrentStreams 1) with a stream that stays open: another stream then waits for a slot
// until its deadline, as grpc-go queues it, but unary calls go over their own connection and
// answer at once.
func TestStreamsDoNotQueueUnaryCalls(t *testing.T) {
	b := start(t, "a", 0, grpc.MaxConcurrentStreams(1))
	set := dial(t, []string{b.addr}, upstream.Options{DisableHealthCheck: true}) // a health watch would take the slot
	poll(t, "READY", set.Ready)
	conn := set.Conn(svc)
	const method = "/shop.inventory.v1.InventoryService/GetItem"
	desc := &grpc.StreamDesc{ServerStreams: true}

	holdCtx, release := context.WithCancel(context.Background())
	defer release()
	if _, err := conn.NewStream(holdCtx, desc, method); err != nil { // no request sent: the upstream waits for it
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := conn.NewStream(ctx, desc, method); status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("second stream with the only slot held: %v, want DEADLINE_EXCEEDED waiting for it", err)
	}

	client := inventoryv1.NewInventoryServiceClient(conn)
	for i := range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		item, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{})
		cancel()
		if err != nil || item.GetName() != "a" {
			t.Fatalf("unary call %d with the stream slots full: %v, %v", i, item, err)
		}
	}
	if got := set.Instances()[svc]; got != (upstream.Instances{Ready: 1, Total: 1}) {
		t.Errorf("Instances = %+v, want the one instance ready", got)
	}
}

func TestReadiness(t *testing.T) {
	a := start(t, "a", 0)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	_ = ln.Close()
	tests := []struct {
		name  string
		addrs []string
		ready bool
	}{
		{"one live backend", []string{a.addr}, true},
		{"one live, one dead", []string{dead, a.addr}, true},
		{"dead only", []string{dead}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			set := dial(t, tt.addrs, upstream.Options{})
			if tt.ready {
				poll(t, "READY", set.Ready)
				if st := set.States()[svc]; st != "READY" {
					t.Errorf("state = %s", st)
				}
				return
			}
			poll(t, "TRANSIENT_FAILURE", func() bool { return set.States()[svc] == "TRANSIENT_FAILURE" })
			if set.Ready() {
				t.Error("Ready with no live backend")
			}
		})
	}
}

func TestRetryPolicyFromMethodConfigs(t *testing.T) {
	tests := []struct {
		name      string
		configs   []upstream.MethodConfig
		wantErr   bool
		wantCalls int64
	}{
		{name: "no retry policy: the first UNAVAILABLE is final", wantErr: true, wantCalls: 1},
		{name: "retried per the method config", wantCalls: 3, configs: []upstream.MethodConfig{{
			Name: []upstream.MethodName{{Service: svc, Method: "GetItem"}},
			RetryPolicy: &upstream.RetryPolicy{MaxAttempts: 4, InitialBackoff: "0.001s", MaxBackoff: "0.01s", BackoffMultiplier: 2,
				RetryableStatusCodes: []string{"UNAVAILABLE"}},
		}}},
		{name: "a config for another service does not apply", wantErr: true, wantCalls: 1, configs: []upstream.MethodConfig{{
			Name:        []upstream.MethodName{{Service: "other.v1.Svc"}},
			RetryPolicy: &upstream.RetryPolicy{MaxAttempts: 4, InitialBackoff: "0.001s", MaxBackoff: "0.01s", BackoffMultiplier: 2, RetryableStatusCodes: []string{"UNAVAILABLE"}},
		}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := start(t, "b", 2)
			var intercepted atomic.Int64
			set := dial(t, []string{b.addr}, upstream.Options{
				MethodConfigs:   tt.configs,
				RetryThrottling: &upstream.RetryThrottling{MaxTokens: 10, TokenRatio: 0.1},
				UnaryInterceptors: []grpc.UnaryClientInterceptor{func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
					intercepted.Add(1)
					return invoker(ctx, method, req, reply, cc, opts...)
				}},
			})
			poll(t, "READY", set.Ready)
			_, err := inventoryv1.NewInventoryServiceClient(set.Conn(svc)).GetItem(context.Background(), &inventoryv1.GetItemRequest{})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if got := b.calls.Load(); got != tt.wantCalls {
				t.Errorf("backend saw %d attempts, want %d", got, tt.wantCalls)
			}
			if intercepted.Load() != 1 {
				t.Errorf("interceptor ran %d times, want once per call (outside the retries)", intercepted.Load())
			}
		})
	}
}

func TestServiceConfigJSON(t *testing.T) {
	sc := upstream.ServiceConfig{
		LoadBalancingConfig: []map[string]struct{}{{"round_robin": {}}},
		HealthCheckConfig:   &upstream.HealthCheckConfig{},
		MethodConfig: []upstream.MethodConfig{{
			Name:        []upstream.MethodName{{Service: svc, Method: "GetItem"}},
			Timeout:     "1s",
			RetryPolicy: &upstream.RetryPolicy{MaxAttempts: 3, InitialBackoff: "0.1s", MaxBackoff: "1s", BackoffMultiplier: 2, RetryableStatusCodes: []string{"UNAVAILABLE"}},
		}},
		RetryThrottling: &upstream.RetryThrottling{MaxTokens: 10, TokenRatio: 0.1},
	}
	s, err := sc.JSON()
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(s), &got); err != nil {
		t.Fatal(err)
	}
	want := `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""},` +
		`"methodConfig":[{"name":[{"service":"shop.inventory.v1.InventoryService","method":"GetItem"}],"timeout":"1s",` +
		`"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}],` +
		`"retryThrottling":{"maxTokens":10,"tokenRatio":0.1}}`
	var wantMap map[string]any
	_ = json.Unmarshal([]byte(want), &wantMap)
	if g, w := mustJSON(got), mustJSON(wantMap); g != w {
		t.Errorf("service config =\n%s\nwant\n%s", g, w)
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestDialErrorsAndClose(t *testing.T) {
	if _, err := upstream.Dial(map[string][]string{svc: nil}, upstream.Options{}); err == nil {
		t.Error("Dial with no addresses succeeded")
	}
	set, err := upstream.Dial(map[string][]string{svc: {"127.0.0.1:1"}}, upstream.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	if err := set.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}
