package retry

import (
	"context"
	"encoding/json"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/upstream"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const inventoryService = "shop.inventory.v1.InventoryService"

// routes is a route table with GetItem idempotent (two bindings) and UpsertItem not.
func routes() []*policy.Route {
	return []*policy.Route{
		{HTTPMethod: "GET", Path: "/v1/inventory/items/{sku}", RPC: "/" + inventoryService + "/GetItem", Service: inventoryService, Policy: policy.Policy{Idempotent: true}},
		{HTTPMethod: "GET", Path: "/v1/items/{sku}", RPC: "/" + inventoryService + "/GetItem", Service: inventoryService, Policy: policy.Policy{Idempotent: true}},
		{HTTPMethod: "PUT", Path: "/v1/inventory/items/{item.sku}", RPC: "/" + inventoryService + "/UpsertItem", Service: inventoryService, Policy: policy.Policy{Idempotent: false}},
		{HTTPMethod: "GET", Path: "/v1/inventory/items", RPC: "/" + inventoryService + "/ListItems", Service: inventoryService, Policy: policy.Policy{Idempotent: true}},
	}
}

// flaky is a real gRPC inventory server whose calls fail with code until failFirst attempts
// have been made; it counts every attempt.
type flaky struct {
	inventoryv1.UnimplementedInventoryServiceServer
	attempts  atomic.Int64
	failFirst int64
	code      codes.Code
}

func (f *flaky) answer() error {
	if n := f.attempts.Add(1); n <= f.failFirst {
		return status.Errorf(f.code, "attempt %d fails", n)
	}
	return nil
}

func (f *flaky) GetItem(_ context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.Item, error) {
	if err := f.answer(); err != nil {
		return nil, err
	}
	return &inventoryv1.Item{Sku: req.GetSku()}, nil
}

func (f *flaky) UpsertItem(_ context.Context, req *inventoryv1.UpsertItemRequest) (*inventoryv1.Item, error) {
	if err := f.answer(); err != nil {
		return nil, err
	}
	return req.GetItem(), nil
}

// connect serves f on loopback and dials it with the service config built from cfg, as the
// gateway's upstream package renders it.
func connect(t *testing.T, f *flaky, cfg Config) inventoryv1.InventoryServiceClient {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	inventoryv1.RegisterInventoryServiceServer(srv, f)
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Stop(); <-done })

	stage, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mcs, err := stage.MethodConfigs(routes())
	if err != nil {
		t.Fatal(err)
	}
	sc, err := upstream.ServiceConfig{
		LoadBalancingConfig: []map[string]struct{}{{"round_robin": {}}},
		MethodConfig:        mcs,
		RetryThrottling:     stage.Throttling(),
	}.JSON()
	if err != nil {
		t.Fatal(err)
	}
	cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithDefaultServiceConfig(sc))
	if err != nil {
		t.Fatalf("service config refused by grpc: %v\n%s", err, sc)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return inventoryv1.NewInventoryServiceClient(cc)
}

var fast = Config{InitialBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}

func TestRetriesOnlyIdempotentRPCs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		cfg          Config
		idempotent   bool
		code         codes.Code
		failFirst    int64
		wantAttempts int64
		wantCode     codes.Code
	}{
		{"idempotent recovers on the third attempt", fast, true, codes.Unavailable, 2, 3, codes.OK},
		{"idempotent gives up after max attempts", fast, true, codes.Unavailable, 10, 3, codes.Unavailable},
		{"idempotent with max attempts 2", Config{MaxAttempts: 2, InitialBackoff: time.Millisecond}, true, codes.Unavailable, 10, 2, codes.Unavailable},
		{"idempotent with retries off", Config{MaxAttempts: 1}, true, codes.Unavailable, 10, 1, codes.Unavailable},
		{"idempotent, non-retryable code", fast, true, codes.Internal, 10, 1, codes.Internal},
		{"idempotent, client error", fast, true, codes.InvalidArgument, 10, 1, codes.InvalidArgument},
		{"non-idempotent attempted once", fast, false, codes.Unavailable, 2, 1, codes.Unavailable},
		{"non-idempotent succeeds once", fast, false, codes.Unavailable, 0, 1, codes.OK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := &flaky{failFirst: tt.failFirst, code: tt.code}
			client := connect(t, f, tt.cfg)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var err error
			if tt.idempotent {
				_, err = client.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: "s"})
			} else {
				_, err = client.UpsertItem(ctx, &inventoryv1.UpsertItemRequest{Item: &inventoryv1.Item{Sku: "s"}})
			}
			if status.Code(err) != tt.wantCode {
				t.Fatalf("err = %v, want %v", err, tt.wantCode)
			}
			if got := f.attempts.Load(); got != tt.wantAttempts {
				t.Fatalf("upstream saw %d attempts, want %d", got, tt.wantAttempts)
			}
		})
	}
}

// TestThrottlingBoundsRetries: against an upstream that always fails, the token bucket (10
// tokens, retries only above 5) stops retrying after the first few calls: grpc-go takes a token
// per failed attempt, so call 1 makes 3 attempts (10->7), call 2 makes 2 (7->5) and every
// later call 1.
func TestThrottlingBoundsRetries(t *testing.T) {
	t.Parallel()
	f := &flaky{failFirst: 1 << 30, code: codes.Unavailable}
	client := connect(t, f, fast)
	const calls = 20
	for range calls {
		_, err := client.GetItem(context.Background(), &inventoryv1.GetItemRequest{Sku: "s"})
		if status.Code(err) != codes.Unavailable {
			t.Fatalf("err = %v", err)
		}
	}
	if got, want := f.attempts.Load(), int64(3+2+(calls-2)); got != want {
		t.Fatalf("upstream saw %d attempts for %d calls, want %d (without throttling: %d)", got, calls, want, 3*calls)
	}
}

func TestMethodConfigs(t *testing.T) {
	t.Parallel()
	rs := routes()
	// A second binding of ListItems that is not idempotent makes the RPC non-idempotent.
	rs = append(rs, &policy.Route{HTTPMethod: "POST", Path: "/v1/inventory/items:search", RPC: "/" + inventoryService + "/ListItems", Service: inventoryService})
	stage, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	mcs, err := stage.MethodConfigs(rs)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := json.Marshal(mcs)
	want := `[{"name":[{"service":"shop.inventory.v1.InventoryService","method":"GetItem"}],` +
		`"retryPolicy":{"maxAttempts":3,"initialBackoff":"0.1s","maxBackoff":"1s","backoffMultiplier":2,"retryableStatusCodes":["UNAVAILABLE"]}}]`
	if string(got) != want {
		t.Fatalf("MethodConfigs =\n%s\nwant\n%s", got, want)
	}
	if thr := stage.Throttling(); thr.MaxTokens != 10 || thr.TokenRatio != 0.1 {
		t.Fatalf("Throttling = %+v; want 10 and 0.1", thr)
	}
}

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"too many attempts", Config{MaxAttempts: 6}, "max_attempts"},
		{"negative attempts", Config{MaxAttempts: -1}, "max_attempts"},
		{"max below initial backoff", Config{InitialBackoff: time.Second, MaxBackoff: time.Millisecond}, "backoff"},
		{"negative multiplier", Config{BackoffMultiplier: -1}, "backoff_multiplier"},
		{"unknown code", Config{RetryableStatusCodes: []string{"SOMETIMES"}}, "retryable_status_codes"},
		{"OK is not retryable", Config{RetryableStatusCodes: []string{"OK"}}, "retryable_status_codes"},
		{"too many tokens", Config{Throttling: ThrottlingConfig{MaxTokens: 1001}}, "throttling"},
		{"token ratio above 1", Config{Throttling: ThrottlingConfig{TokenRatio: 1.5}}, "throttling"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one about %s", err, tt.want)
			}
		})
	}
	stage, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stage.MethodConfigs([]*policy.Route{{RPC: "GetItem"}}); err == nil {
		t.Fatal("a malformed RPC name was accepted")
	}
	stage, err = New(Config{RetryableStatusCodes: []string{"unavailable", "deadline_exceeded"}})
	if err != nil {
		t.Fatal(err)
	}
	mcs, err := stage.MethodConfigs(routes())
	if err != nil || strings.Join(mcs[0].RetryPolicy.RetryableStatusCodes, ",") != "UNAVAILABLE,DEADLINE_EXCEEDED" {
		t.Fatalf("codes = %v, %v", mcs, err)
	}
}
