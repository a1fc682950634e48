// Package deadline is where the deadline of an upstream call is decided: the route's timeout
// (policy.Policy.Timeout), or the client's own shorter deadline (a Grpc-Timeout header, which
// grpc-gateway puts on the request's context). Two stages of the pipeline share it:
//
//   - The route timeouts are the upstream connections' service config (the Transport stage
//     "timeout", built by gateway/server from the route table): grpc-go bounds the call with it, all its retries
//     included, sends it upstream as grpc-timeout, and answers DEADLINE_EXCEEDED (504). grpc-go
//     derives a context for every call anyway; a timer of the gateway's own on top would cost
//     one context more per call.
//   - Unary and Stream (the Client stage "deadline", above the circuit breaker) decide, once,
//     whose deadline binds: when the client's is sooner than the route's timeout, the call is
//     marked ClientBound. The breaker and outlier ejection then need no guess: a call that ran
//     out of the route's timeout is the upstream's failure, one that ran out of a client's
//     shorter deadline is the client's doing. A call without a client deadline costs nothing.
//
// A streaming route's response can outlive the HTTP server's WriteTimeout: StreamWriteDeadline
// moves it to the route's timeout.
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

// mark returns ctx marked ClientBound when the client's deadline is sooner than the route's
// timeout, else ctx itself. Without a route in ctx (a call not made by the gateway's mux), or
// for a route without a timeout, nothing changes.
func mark(ctx context.Context) context.Context {
	dl, ok := ctx.Deadline()
	if !ok {
		return ctx
	}
	if rt := policy.FromContext(ctx); rt != nil && rt.Policy.Timeout > 0 && time.Until(dl) < rt.Policy.Timeout {
		return clientBound{ctx}
	}
	return ctx
}

// Unary is the deadline stage for unary calls.
func Unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(mark(ctx), method, req, reply, cc, opts...)
}

// Stream is the deadline stage for streaming calls (a :watch lives at most its route's
// timeout: the service config's, as for unary calls).
func Stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(mark(ctx), desc, cc, method, opts...)
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
