package upstream

import (
	"context"
	"sync"

	"google.golang.org/grpc"
)

// chainUnary composes ics, first outermost, into one interceptor, as
// grpc.WithChainUnaryInterceptor does but without its closure per level on every call: a call
// takes from a pool a chainCall whose invoker per level was made once, and gives it back when
// the outermost interceptor returns. So an interceptor must call its invoker, if at all, before
// it returns (every stage of the gateway's pipeline does; none hands it to another goroutine).
func chainUnary(ics []grpc.UnaryClientInterceptor) grpc.UnaryClientInterceptor {
	switch len(ics) {
	case 0:
		return nil
	case 1:
		return ics[0]
	}
	ch := &unaryChain{ics: ics}
	ch.pool.New = func() any { return ch.newCall() }
	return ch.intercept
}

// unaryChain is a composed chain of unary interceptors.
type unaryChain struct {
	ics  []grpc.UnaryClientInterceptor
	pool sync.Pool // of *chainCall
}

// chainCall is one call's way through the chain: next[i] is the invoker ics[i] receives, the
// last one calling final, the call's own invoker.
type chainCall struct {
	final grpc.UnaryInvoker
	next  []grpc.UnaryInvoker
}

func (ch *unaryChain) newCall() *chainCall {
	c := &chainCall{next: make([]grpc.UnaryInvoker, len(ch.ics))}
	last := len(ch.ics) - 1
	c.next[last] = func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
		return c.final(ctx, method, req, reply, cc, opts...)
	}
	for i := last - 1; i >= 0; i-- {
		ic, next := ch.ics[i+1], c.next[i+1]
		c.next[i] = func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, opts ...grpc.CallOption) error {
			return ic(ctx, method, req, reply, cc, next, opts...)
		}
	}
	return c
}

func (ch *unaryChain) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	c := ch.pool.Get().(*chainCall)
	c.final = invoker
	err := ch.ics[0](ctx, method, req, reply, cc, c.next[0], opts...)
	c.final = nil
	ch.pool.Put(c)
	return err
}
