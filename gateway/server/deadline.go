package server

import (
	"net/http"
	"time"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// deadline prepares the call: the route's timeout itself is the upstream connection's
// per-method timeout (methodConfigs: grpc-go puts it on the call's context and sends it
// upstream; a client's Grpc-Timeout header, which grpc-gateway applies to the request's context,
// can only shorten it). This layer strips what grpc-gateway would forward on its own
// (stripForwarding) and, when the server has a WriteTimeout (server.write_timeout), moves a
// streaming route's write deadline to its own timeout, so that :watch streams are not cut by a
// limit meant for unary answers.
func deadline(writeTimeout bool) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if rt := policy.FromContext(r.Context()); writeTimeout && rt != nil && rt.ServerStreaming && rt.Policy.Timeout > 0 {
				// Errors mean the writer cannot move its deadline; the server's WriteTimeout stays.
				_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(rt.Policy.Timeout + time.Second))
			}
			stripForwarding(r) // r is grpc-gateway's own copy of the request (ServeMux.handleHandler)
			next.ServeHTTP(w, r)
		})
	}
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
