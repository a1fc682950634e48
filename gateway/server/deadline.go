package server

import (
	"context"
	"net/http"
	"time"

	"github.com/acme/shopgate/gateway/breaker"
	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// deadline bounds the call by the route's timeout (a client's Grpc-Timeout header can only
// shorten it: grpc-gateway applies it with context.WithTimeout on this context) and strips what
// grpc-gateway would forward on its own (stripForwarding). When the server has a WriteTimeout
// (server.write_timeout), a streaming route's write deadline is moved to its own timeout, so
// that :watch streams are not cut by a limit meant for unary answers.
func deadline(writeTimeout bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			serveWithDeadline(next, writeTimeout, w, r)
		})
	}
}

func serveWithDeadline(next http.Handler, writeTimeout bool, w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if rt := policy.FromContext(ctx); rt != nil && rt.Policy.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = breaker.WithTimeout(ctx, rt.Policy.Timeout) // marked: its expiry counts against the upstream
		defer cancel()
		if writeTimeout && rt.ServerStreaming {
			// Errors mean the writer cannot move its deadline; the server's WriteTimeout stays.
			_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(rt.Policy.Timeout + time.Second))
		}
	}
	// A new context, not a rebased edge State: a context derived from the State earlier (the
	// Redis limiter's call timeout) may be cancelled by its timer at any moment and then reads
	// its parents' Done from that timer's goroutine.
	r = r.WithContext(ctx)
	stripForwarding(r)
	next.ServeHTTP(w, r)
}

// generated calls the generated grpc-gateway handler with the path parameters the route stage
// kept in the request's edge state.
func generated(next runtime.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var params map[string]string
		if st := edge.StateFrom(r.Context()); st != nil {
			params, _ = st.Data.(map[string]string)
		}
		next(w, r, params)
	})
}
