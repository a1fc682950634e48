package pipeline

import (
	"context"

	"google.golang.org/grpc"

	"github.com/acme/shopgate/gateway/upstream"
)

// DialOptions returns what the Client and Transport stages add to an upstream dial: the
// interceptors, first outermost, and the service config entries, in table order.
func (p Pipeline) DialOptions(trace Trace) (unary []grpc.UnaryClientInterceptor, stream []grpc.StreamClientInterceptor, mcs []upstream.MethodConfig, throttling *upstream.RetryThrottling) {
	for _, st := range p.stages {
		switch st.Layer {
		case Client:
			if st.Unary != nil {
				unary = append(unary, tracedUnary(trace, st.Name, st.Unary))
			}
			if st.Stream != nil {
				stream = append(stream, tracedStream(trace, st.Name, st.Stream))
			}
		case Transport:
			mcs = append(mcs, st.MethodConfigs...)
			if st.Throttling != nil {
				throttling = st.Throttling
			}
		}
	}
	return unary, stream, mcs, throttling
}

func tracedUnary(trace Trace, name string, next grpc.UnaryClientInterceptor) grpc.UnaryClientInterceptor {
	if trace == nil {
		return next
	}
	return func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
		trace(name)
		return next(ctx, method, req, reply, cc, invoker, opts...)
	}
}

func tracedStream(trace Trace, name string, next grpc.StreamClientInterceptor) grpc.StreamClientInterceptor {
	if trace == nil {
		return next
	}
	return func(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
		trace(name)
		return next(ctx, desc, cc, method, streamer, opts...)
	}
}
