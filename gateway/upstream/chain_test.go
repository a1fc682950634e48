package upstream

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"google.golang.org/grpc"
)

// recordingChain returns n interceptors that append their number to the trace of the call (its
// request, a *[]string) before and after calling on, each calling its invoker calls times.
func recordingChain(n, calls int) []grpc.UnaryClientInterceptor {
	var ics []grpc.UnaryClientInterceptor
	for i := range n {
		ics = append(ics, func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			trace := req.(*[]string)
			*trace = append(*trace, fmt.Sprint("in", i))
			var err error
			for range calls {
				err = invoker(ctx, method, req, reply, cc, opts...)
			}
			*trace = append(*trace, fmt.Sprint("out", i))
			return err
		})
	}
	return ics
}

// TestChainUnary: the composed chain runs the interceptors outermost first, hands the call's
// own invoker its arguments, returns its error, and lets an interceptor call on twice (a
// retry) or not at all, as grpc.WithChainUnaryInterceptor does.
func TestChainUnary(t *testing.T) {
	errFinal := errors.New("from the invoker")
	tests := []struct {
		name  string
		n     int
		calls int
		want  []string
	}{
		{"one", 1, 1, []string{"in0", "final", "out0"}},
		{"three", 3, 1, []string{"in0", "in1", "in2", "final", "out2", "out1", "out0"}},
		{"an interceptor calling on twice", 2, 2, []string{"in0", "in1", "final", "final", "out1", "in1", "final", "final", "out1", "out0"}},
		{"an interceptor not calling on", 2, 0, []string{"in0", "out0"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ic := chainUnary(recordingChain(tt.n, tt.calls))
			for round := range 3 { // pooled calls are reused: each round must see only its own invoker
				var trace []string
				final := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
					if method != "/pkg.S/M" || reply != round {
						t.Errorf("invoker got %q, %v; want the call's arguments", method, reply)
					}
					*req.(*[]string) = append(*req.(*[]string), "final")
					return errFinal
				}
				err := ic(context.Background(), "/pkg.S/M", &trace, round, nil, final)
				if tt.calls > 0 && !errors.Is(err, errFinal) {
					t.Errorf("error %v, want the invoker's", err)
				}
				if !slices.Equal(trace, tt.want) {
					t.Errorf("round %d: %v, want %v", round, trace, tt.want)
				}
			}
		})
	}
	if chainUnary(nil) != nil {
		t.Error("no interceptor: want no chain")
	}
}

// TestChainUnaryConcurrent: concurrent calls each reach their own invoker.
func TestChainUnaryConcurrent(t *testing.T) {
	pass := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		return invoker(ctx, method, req, reply, cc, opts...)
	}
	ic := chainUnary([]grpc.UnaryClientInterceptor{pass, pass, pass})
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				want := g*1000 + i
				var got int
				final := func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
					got = reply.(int)
					return nil
				}
				_ = ic(context.Background(), "/pkg.S/M", nil, want, nil, final)
				if got != want {
					t.Errorf("call %d reached the invoker of call %d", want, got)
					return
				}
			}
		}()
	}
	wg.Wait()
}
