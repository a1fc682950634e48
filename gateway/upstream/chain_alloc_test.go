//go:build !race

package upstream

import (
	"context"
	"testing"

	"google.golang.org/grpc"
)

// TestChainUnaryDoesNotAllocate: a call through the composed chain allocates nothing
// (grpc.WithChainUnaryInterceptor allocates a closure per level). Not under -race, whose
// sync.Pool drops items on purpose.
func TestChainUnaryDoesNotAllocate(t *testing.T) {
	pass := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	ic := chainUnary([]grpc.UnaryClientInterceptor{pass, pass, pass, pass})
	final := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ctx := context.Background()
	call := func() { _ = ic(ctx, "/pkg.S/M", nil, nil, nil, final) }
	call()
	if n := testing.AllocsPerRun(1000, call); n != 0 {
		t.Errorf("%v allocations per call, want 0", n)
	}
}
