// Package deadline is where the gateway sets the deadline of an upstream call: the route's
// timeout (policy.Policy.Timeout), or the client's own shorter deadline (a Grpc-Timeout header,
// which grpc-gateway puts on the request's context). It is a gRPC client stage that runs above
// the circuit breaker and below the passport, and it decides, once, whose deadline bounds the
// call, so that the breaker needs no guess: a call that runs out of the route's timeout is the
// upstream's failure, one that runs out of a client's shorter deadline is the client's doing
// (ClientBound).
//
// The deadline covers every attempt of a retried call (grpc-go retries below the interceptors)
// and travels upstream as grpc-timeout. A streaming route's response can outlive the HTTP
// server's WriteTimeout: StreamWriteDeadline moves it to the route's timeout.
package deadline

import (
	"context"
	"net/http"
	"time"

	"google.golang.org/grpc"

	"github.com/acme/shopgate/gateway/policy"
)

// clientBound marks a call whose deadline is the client's: it is sooner than the route's.
type clientBound struct{ context.Context }

type clientBoundKey struct{}

func (c clientBound) Value(key any) any {
	if key == (clientBoundKey{}) {
		return true
	}
	return c.Context.Value(key)
}

// ClientBound reports whether the call of ctx is bounded by the client's own deadline rather
// than the route's timeout (set by the Unary and Stream stages).
func ClientBound(ctx context.Context) bool {
	b, _ := ctx.Value(clientBoundKey{}).(bool)
	return b
}

// bound returns ctx bounded by the route's timeout, unless the client's deadline is already
// sooner: then ctx is only marked ClientBound. A route with no timeout (0) adds none. Without
// a route in ctx (a call not made by the gateway's mux) nothing changes.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	rt := policy.FromContext(ctx)
	if rt == nil || rt.Policy.Timeout <= 0 {
		return ctx, nil
	}
	if dl, ok := ctx.Deadline(); ok && time.Until(dl) < rt.Policy.Timeout {
		return clientBound{ctx}, nil
	}
	return context.WithTimeout(ctx, rt.Policy.Timeout)
}

// Unary is the deadline stage for unary calls.
func Unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, cancel := bound(ctx)
	if cancel != nil {
		defer cancel()
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// Stream is the deadline stage for streaming calls. The deadline ends the stream (a :watch
// lives at most its route's timeout); its timer is released when the stream ends, which the
// request's own end guarantees (grpc-gateway cancels the call's context when the handler
// returns).
func Stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, cancel := bound(ctx)
	cs, err := streamer(ctx, desc, cc, method, opts...)
	if err != nil && cancel != nil {
		cancel()
	}
	return cs, err
}

// StreamWriteDeadline is the HTTP route stage that, when the server has a WriteTimeout
// (server.write_timeout, off by default), moves a streaming route's write deadline to its own
// timeout plus a second, so that a :watch stream is not cut by a limit meant for unary answers.
// With writeTimeout false it passes every request untouched.
func StreamWriteDeadline(writeTimeout bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		if !writeTimeout {
			return next
		}
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rt := policy.FromContext(r.Context()); rt != nil && rt.ServerStreaming && rt.Policy.Timeout > 0 {
				// An error means the writer cannot move its deadline; the server's WriteTimeout stays.
				_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(rt.Policy.Timeout + time.Second))
			}
			next.ServeHTTP(w, r)
		})
	}
}
