package pipeline

import (
	"context"
	"slices"

	"google.golang.org/grpc"

	"github.com/acme/shopgate/gateway/upstream"
)

// DialOptions returns what the Client and Transport stages add to an upstream dial: the
// interceptors, first outermost, and the service config entries, in table order. Entries of
// several Transport stages that name the same method become one (a service config allows one
// entry per method): a later stage fills the fields an earlier one left empty.
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
			mcs = mergeMethodConfigs(mcs, st.MethodConfigs)
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

// mergeMethodConfigs appends add to mcs, merged into the entry of mcs whose first name is the
// same as theirs.
func mergeMethodConfigs(mcs, add []upstream.MethodConfig) []upstream.MethodConfig {
	for _, a := range add {
		i := slices.IndexFunc(mcs, func(m upstream.MethodConfig) bool {
			return len(m.Name) > 0 && len(a.Name) > 0 && m.Name[0] == a.Name[0]
		})
		if i < 0 {
			mcs = append(mcs, a)
			continue
		}
		m := &mcs[i]
		if m.Timeout == "" {
			m.Timeout = a.Timeout
		}
		if m.RetryPolicy == nil {
			m.RetryPolicy = a.RetryPolicy
		}
		if m.WaitForReady == nil {
			m.WaitForReady = a.WaitForReady
		}
	}
	return mcs
}
