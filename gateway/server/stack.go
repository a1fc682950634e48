package server

import (
	"net/http"
	"sync/atomic"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/routes"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/encoding/protojson"
)

// assemble wires snap's handler stack. This is the one place where the order of the layers is
// written down; TestStackOrder pins it.
//
//	edge (net/http, every request):
//	  1 recover -> 2 request id -> 3 access log + metrics -> 4 CORS (preflights end here)
//	  -> 5 IP rules (global) -> 6 body limit -> 7 grpc-gateway mux (route match)
//	after the route matched (runtime.WithMiddlewares; the route is in the context):
//	  8 IP rules (route) -> 9 auth (authenticate, authorize, identity in context)
//	  -> 10 rate limit -> 11 deadline (forwarding headers, stream write deadline)
//	  -> 12 generated handler (decode, gRPC call)
//	gRPC client (upstream.Dial, set once in New):
//	  13 passport interceptor -> 14 breaker interceptor
//	  -> 15 route timeout and retries (the connection's service config: methodConfigs) -> upstream
func (s *Server) assemble(snap *snapshot) error {
	snap.mux = runtime.NewServeMux(
		runtime.WithMiddlewares(s.routeStage(snap)),                      // 7 -> 8: find the route, run the route layers
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),     // protojson, unknown fields refused
		runtime.WithErrorHandler(errorHandler),                           // every error as google.rpc.Status
		runtime.WithRoutingErrorHandler(routingErrorHandler(snap.table)), // 404, 405 + Allow
		runtime.WithStreamErrorHandler(streamErrorHandler),               // final {"error":...} of a stream
		runtime.WithIncomingHeaderMatcher(incomingHeader),                // allow-list of client headers
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),                // no upstream headers out
		runtime.WithOutgoingTrailerMatcher(outgoingHeader),               // no upstream trailers out
		runtime.WithDisableHTTPMethodOverride(),                          // the method routed is the method sent
		runtime.WithDisablePathLengthFallback(),                          // no POST-as-GET
		runtime.WithWriteContentLength(),                                 // every unary reply declares its Content-Length
	)
	if err := s.registerUpstreams(snap.mux, snap.conns.set); err != nil {
		return err
	}
	snap.handler = s.chain([]layer{
		{"recover", edge.Recover(s.logger)},                          // 1 panic -> 500 Status, connection kept
		{"request-id", edge.RequestID},                               // 2 X-Request-Id kept or made
		{"access-log", s.accessLayer(snap)},                          // 3 access log + metrics
		{"cors", snap.cors.Middleware},                               // 4 CORS; preflights answered here
		{"ip-global", snap.ipFilter.Middleware},                      // 5 IP rules (global)
		{"body-limit", edge.BodyLimit(snap.cfg.Limits.MaxBodyBytes)}, // 6 body limit: 413
	}, snap.mux) // 7 grpc-gateway mux: route match, then routeStage
	return nil
}

// accessLayer is the access log and request metrics: the gateway's own JSON encoder when the
// process gave a writer, else the access logger.
func (s *Server) accessLayer(snap *snapshot) func(http.Handler) http.Handler {
	if s.accessW != nil {
		return edge.AccessLogJSON(s.accessW, s.metrics, snap.clientIP.ClientIP)
	}
	return edge.AccessLog(s.accessLog, s.metrics, snap.clientIP.ClientIP)
}

// routeLayers are the layers after the route matched (8 to 11), in order; the generated
// handler (12) comes after them.
func (s *Server) routeLayers(snap *snapshot) []layer {
	return []layer{
		{"ip-route", snap.ipFilter.RouteMiddleware},              // 8 IP rules of the route
		{"auth", snap.auth.Middleware},                           // 9 authenticate, authorize, identity in context
		{"rate-limit", snap.limiter.Middleware},                  // 10 rate limit per caller and route
		{"deadline", deadline(s.static.Server.WriteTimeout > 0)}, // 11 forwarding headers stripped; the timeout is 15
	}
}

// layer is one named middleware of the stack.
type layer struct {
	name string
	wrap func(http.Handler) http.Handler
}

// chain wraps h in layers, the first outermost. With s.trace set (tests), each layer is
// preceded by a probe that records its name.
func (s *Server) chain(layers []layer, h http.Handler) http.Handler {
	for i := len(layers) - 1; i >= 0; i-- {
		h = layers[i].wrap(h)
		if s.trace != nil {
			h = traced(s.trace, layers[i].name, h)
		}
	}
	return h
}

func traced(trace func(string), name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace(name)
		next.ServeHTTP(w, r)
	})
}

// marshaler is protojson: lowerCamelCase out, either spelling in, unknown fields refused
// (400), unpopulated fields emitted so that every response has one shape (as grpc-gateway's
// default does).
var marshaler = &runtime.HTTPBodyMarshaler{Marshaler: &runtime.JSONPb{
	MarshalOptions:   protojson.MarshalOptions{EmitUnpopulated: true},
	UnmarshalOptions: protojson.UnmarshalOptions{DiscardUnknown: false},
}}

// routeStage is the mux middleware: grpc-gateway calls it once per registered binding, so the
// binding's table key is computed once (on its first request) and cached; per request it is one
// map lookup. A binding missing from the table gets the safe default policy, never an open one.
func (s *Server) routeStage(snap *snapshot) runtime.Middleware {
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		var key atomic.Pointer[string]
		stack := s.chain(s.routeLayers(snap), generated(next)) // 8-11, then 12 the generated handler
		return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
			k := key.Load()
			if k == nil {
				pat, _ := runtime.HTTPPattern(r.Context())
				ks := routes.Key(r.Method, pat.String())
				key.Store(&ks)
				k = &ks
			}
			rt := snap.table.Lookup(*k)
			if rt == nil {
				rt = snap.table.Default()
			}
			st, w, r := edge.Ensure(w, r)
			st.RPC = rt.RPC
			st.Data = params
			st.Route = rt                              // the edge state answers policy.FromContext: no new context needed
			if policy.FromContext(r.Context()) != rt { // unless a context below the state hides it
				r = r.WithContext(policy.NewContext(r.Context(), rt))
			}
			stack.ServeHTTP(w, r)
		}
	}
}
