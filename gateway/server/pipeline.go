package server

import (
	"net/http"
	"strings"
	"sync/atomic"

	"github.com/acme/shopgate/gateway/deadline"
	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/pipeline"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/routes"
	"github.com/acme/shopgate/gateway/sse"
	"github.com/acme/shopgate/gateway/tracing"
	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
)

// declare is the one place where the stages a request passes are written down, in order, from
// the first net/http middleware to grpc-go's retries: every layer of the snapshot is wired from
// this table (assemble, connsFor), ExampleServer_Pipeline prints it, docs/ARCHITECTURE.md shows
// it (TestArchitectureDocShowsThePipeline) and TestStackOrder checks that a real request passes
// exactly these stages.
//
// Why this order:
//   - recover and request-id come first so that every answer, even a panic's, is a
//     google.rpc.Status with X-Request-Id; the access log wraps everything after it. The trace
//     stage sits between them, so that the access log and the metrics see the request's span.
//   - CORS answers preflights before any rule that would refuse them (and a browser can read
//     a refusal); IP rules, the abuse block and the body limit cost nothing per byte and refuse
//     before routing. The abuse stage sits inside the access log, so its 429s are logged, and
//     counts the 401s the auth stage gives further in.
//   - A HEAD becomes a GET just before the router, so the access log still says HEAD.
//   - After the router: the route's IP rules, then auth (a refused caller costs no quota), then
//     the rate limit, keyed by the verified caller, then the cache (a hit is authorized, costs
//     quota like any answer, and is keyed by the verified caller), then the cap on a caller's
//     open streams (a start the rate limit refused never holds a place; the place is held
//     until the handler returns, so the stage must wrap the handler). Then the pool stage
//     chooses the upstream pool of a service with pools: after auth, since a rule may read the
//     verified caller, and before forwarding, which drops the headers a rule may read
//     (X-Forwarded-For behind trusted proxies). The sse stage sits last, next to the handler
//     whose writes it frames, below stream-write so that its heartbeats move the same write
//     deadline as the events. Nothing reads the body before the handler, so a request refused
//     by a stage is refused before its body is read or decoded.
//   - On the upstream call: the passport, then the deadline stage above the breaker, so that
//     the breaker knows whose deadline bounded a call that timed out (deadline.ClientBound) and
//     counts only the route's; the breaker above grpc-go's own stages, so a call counts once
//     whatever its attempts. The upstream call metrics come last of the interceptors: they
//     count what is sent upstream, not what the breaker refused, once whatever the attempts. grpc-go applies the route timeout and the retries below every
//     interceptor, from the service config: the timeout covers all attempts, and costs no
//     context of the gateway's own.
func (s *Server) declare(snap *snapshot) (pipeline.Pipeline, error) {
	retried, err := snap.retry.MethodConfigs(snap.table.Routes())
	if err != nil {
		return pipeline.Pipeline{}, err
	}
	timeouts, err := timeoutConfigs(snap.table.Routes())
	if err != nil {
		return pipeline.Pipeline{}, err
	}
	writeTimeout := s.static.Server.WriteTimeout > 0
	return pipeline.New(
		pipeline.Stage{Name: "recover", Layer: pipeline.Edge, HTTP: edge.Recover(s.logger),
			Doc: "a panic becomes a 500 google.rpc.Status; the connection is kept"},
		pipeline.Stage{Name: "request-id", Layer: pipeline.Edge, HTTP: edge.RequestID,
			Doc: "keeps a well-formed X-Request-Id or makes one; every answer carries it"},
		pipeline.Stage{Name: "trace", Layer: pipeline.Edge, HTTP: tracing.Middleware(s.tracer, s.listenTLS != nil),
			Doc: "with tracing on: the request's server span, continuing a traceparent; absent when off"},
		pipeline.Stage{Name: "access-log", Layer: pipeline.Edge, HTTP: s.accessLayer(snap),
			Doc: "one access log line and the request metrics per request"},
		pipeline.Stage{Name: "cors", Layer: pipeline.Edge, HTTP: snap.cors.Middleware,
			Doc: "CORS headers; preflights are answered here"},
		pipeline.Stage{Name: "ip-global", Layer: pipeline.Edge, HTTP: snap.ipFilter.Middleware,
			Doc: "global IP allow and deny lists: 403"},
		pipeline.Stage{Name: "abuse", Layer: pipeline.Edge, HTTP: snap.abuse.Middleware,
			Doc: "an address with too many 401s (default 30 in 1m): 429 with Retry-After"},
		pipeline.Stage{Name: "body-limit", Layer: pipeline.Edge, HTTP: edge.BodyLimit(snap.cfg.Limits.MaxBodyBytes),
			Doc: "a body over limits.max_body_bytes: 413"},
		pipeline.Stage{Name: "head", Layer: pipeline.Edge, HTTP: edge.HeadAsGet,
			Doc: "a HEAD is served as the GET of its path, without the body"},
		pipeline.Stage{Name: "router", Layer: pipeline.Router,
			Doc: "grpc-gateway mux: method and path to a route; 404, or 405 with Allow"},
		pipeline.Stage{Name: "ip-route", Layer: pipeline.Route, HTTP: snap.ipFilter.RouteMiddleware,
			Doc: "the route's allow_cidrs and deny_cidrs: 403"},
		pipeline.Stage{Name: "auth", Layer: pipeline.Route, HTTP: snap.auth.Middleware,
			Doc: "authenticates (JWT, API key) and authorizes (roles): 401, 403"},
		pipeline.Stage{Name: "rate-limit", Layer: pipeline.Route, HTTP: snap.limiter.Middleware,
			Doc: "per caller and RPC: 429 with Retry-After; 503 while a fail-closed backend is down"},
		pipeline.Stage{Name: "cache", Layer: pipeline.Route, HTTP: snap.cache.Middleware,
			Doc: "GET: ETag, 304 on If-None-Match, Cache-Control; the route's response cache; writes invalidate"},
		pipeline.Stage{Name: "stream-limit", Layer: pipeline.Route, HTTP: snap.streams.Middleware,
			Doc: "a caller holding streams.max_per_caller (10) open server streams: 429 with Retry-After"},
		pipeline.Stage{Name: "pool", Layer: pipeline.Route, HTTP: poolStage(snap),
			Doc: "a service with pools: the first of its rules that matches picks the pool (gateway/traffic)"},
		pipeline.Stage{Name: "forwarding", Layer: pipeline.Route, HTTP: forwarding,
			Doc: "a bad Idempotency-Key: 400; Authorization and X-Forwarded-* never go upstream"},
		pipeline.Stage{Name: "stream-write", Layer: pipeline.Route, HTTP: deadline.StreamWriteDeadline(writeTimeout),
			Doc: "a stream's write deadline follows its route timeout (with server.write_timeout set)"},
		pipeline.Stage{Name: "sse", Layer: pipeline.Route, HTTP: snap.sse.Middleware,
			Doc: "a stream is server-sent events for Accept: text/event-stream (heartbeats), else NDJSON"},
		pipeline.Stage{Name: "transcode", Layer: pipeline.Handler,
			Doc: "generated handler: JSON to protobuf (400), the upstream call, protobuf to JSON"},
		pipeline.Stage{Name: "passport", Layer: pipeline.Client, Unary: s.passport.Unary, Stream: s.passport.Stream,
			Doc: "the verified identity as a signed passport (x-passport), cached per caller and service"},
		pipeline.Stage{Name: "deadline", Layer: pipeline.Client, Unary: deadline.Unary, Stream: deadline.Stream,
			Doc: "whose deadline binds: the route's timeout, or the client's shorter Grpc-Timeout"},
		pipeline.Stage{Name: "breaker", Layer: pipeline.Client, Unary: s.breakers.UnaryClientInterceptor(), Stream: s.breakers.StreamClientInterceptor(),
			Doc: "per RPC and pool (breaker.scope): 503 at once while open; counts upstream failures only"},
		pipeline.Stage{Name: "early-refusal", Layer: pipeline.Client, Stream: refuseEarly,
			Doc: "a stream refused before its first message answers with its status, not a 200"},
		pipeline.Stage{Name: "upstream-metrics", Layer: pipeline.Client, Unary: s.metrics.Upstream().Unary(), Stream: s.metrics.Upstream().Stream(),
			Doc: "grpc_client_* metrics of each call that goes upstream (once, whatever its retries)"},
		pipeline.Stage{Name: "timeout", Layer: pipeline.Transport, MethodConfigs: timeouts,
			Doc: "grpc-go bounds the call, all attempts, by its route timeout; sends it as grpc-timeout"},
		pipeline.Stage{Name: "retry", Layer: pipeline.Transport, MethodConfigs: retried, Throttling: snap.retry.Throttling(),
			Doc: "grpc-go retries idempotent RPCs (UNAVAILABLE) with backoff, within a token budget"},
	)
}

// Pipeline returns the stage table of the current configuration.
func (s *Server) Pipeline() pipeline.Pipeline { return s.cur.Load().pipeline }

// assemble wires snap's handler from its pipeline: the Router stage is grpc-gateway's mux with
// the options below; the Route stages run as its middleware, the Handler stage is the generated
// handler, and the Edge stages wrap the mux. The Client and Transport stages are on the
// connections (connsFor).
func (s *Server) assemble(snap *snapshot) error {
	snap.mux = runtime.NewServeMux(
		runtime.WithMiddlewares(s.routeStage(snap)),                      // router -> route stages -> transcode
		runtime.WithMarshalerOption(runtime.MIMEWildcard, marshaler),     // protojson, unknown fields refused
		runtime.WithMarshalerOption(sse.MIME, sseMarshaler),              // streams as events (the sse stage sets Accept)
		runtime.WithErrorHandler(errorHandler),                           // every error as google.rpc.Status
		runtime.WithRoutingErrorHandler(routingErrorHandler(snap.table)), // 404, 405 + Allow
		runtime.WithStreamErrorHandler(streamErrorHandler),               // final {"error":...} of a stream
		runtime.WithIncomingHeaderMatcher(s.incomingHeader()),            // allow-list of client headers
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),                // no upstream headers out
		runtime.WithOutgoingTrailerMatcher(outgoingHeader),               // no upstream trailers out
		runtime.WithDisableHTTPMethodOverride(),                          // the method routed is the method sent
		runtime.WithDisablePathLengthFallback(),                          // no POST-as-GET
		runtime.WithWriteContentLength(),                                 // every unary reply declares its Content-Length
	)
	if err := s.registerUpstreams(snap.mux, snap.conns.set); err != nil {
		return err
	}
	admin := s.adminStage(snap, adminRoute, snap.abuse.AdminHandler())
	routeList := s.adminStage(snap, adminRoutesRoute, snap.table.Handler(func(svc string) bool { return len(s.addrs[svc]) > 0 }))
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == PathAbuseBlocks && s.adminHere(r):
			admin.ServeHTTP(w, r)
		case r.URL.Path == PathRoutes && s.adminHere(r):
			routeList.ServeHTTP(w, r)
		default: // with server.admin_listen, the public listener's /admin/* is unknown: 404
			snap.mux.ServeHTTP(w, r)
		}
	})
	snap.handler = snap.pipeline.HTTP(pipeline.Edge, inner, s.trace)
	return nil
}

// PathAbuseBlocks lists the client addresses blocked for abuse (GET) and lifts one (DELETE
// ?addr=): an admin's credential is required.
const PathAbuseBlocks = "/admin/abuse/blocks"

// PathRoutes serves the running route table as JSON (GET): each route's method, template, RPC,
// whether its service has upstream addresses, and each resolved policy value with the layer
// it came from (routes.Entry). An admin's credential is required, as on PathAbuseBlocks; it is
// served on the admin listener when server.admin_listen is set, else on the main listener.
const PathRoutes = "/admin/routes"

// adminRoute is the policy of the gateway's own admin endpoints: an authenticated admin.
var adminRoute = &policy.Route{RPC: "/gateway.admin/Abuse", Path: PathAbuseBlocks, Policy: policy.Policy{
	Auth: policy.AuthRequired, Roles: []string{"admin"},
}}

// adminRoutesRoute is adminRoute's policy for PathRoutes, under its own name in the logs.
var adminRoutesRoute = &policy.Route{RPC: "/gateway.admin/Routes", Path: PathRoutes, Policy: adminRoute.Policy}

// adminStage runs h behind the edge stages (the caller wraps them) and the auth stage, under
// route (adminRoute or adminRoutesRoute).
func (s *Server) adminStage(snap *snapshot, route *policy.Route, h http.Handler) http.Handler {
	authed := snap.auth.Middleware(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st, w, r := edge.Ensure(w, r)
		st.RPC, st.Route = route.RPC, route
		if policy.FromContext(r.Context()) != route {
			r = r.WithContext(policy.NewContext(r.Context(), route))
		}
		authed.ServeHTTP(w, r)
	})
}

// accessLayer is the access log and request metrics: the gateway's own JSON encoder when the
// process gave a writer, else the access logger.
func (s *Server) accessLayer(snap *snapshot) func(http.Handler) http.Handler {
	if s.accessW != nil {
		return edge.AccessLogJSON(s.accessW, s.metrics, snap.clientIP.ClientIP)
	}
	return edge.AccessLog(s.accessLog, s.metrics, snap.clientIP.ClientIP)
}

// routeStage is the mux middleware: grpc-gateway calls it once per registered binding, so the
// binding's table key is computed once (on its first request) and cached; per request it is one
// map lookup. A binding missing from the table gets the safe default policy, never an open one.
// It puts the route in the request's edge State, then runs the Route stages and the Handler.
func (s *Server) routeStage(snap *snapshot) runtime.Middleware {
	return func(next runtime.HandlerFunc) runtime.HandlerFunc {
		var key atomic.Pointer[string]
		var verbless atomic.Bool // the binding's template has no custom verb (":cancel")
		stack := pipeline.Traced(s.trace, "router", snap.pipeline.HTTP(pipeline.Route, pipeline.Traced(s.trace, "transcode", generated(next)), s.trace))
		return func(w http.ResponseWriter, r *http.Request, params map[string]string) {
			k := key.Load()
			if k == nil {
				pat, _ := runtime.HTTPPattern(r.Context())
				ks := routes.Key(r.Method, pat.String())
				verbless.Store(pat.Verb() == "")
				key.Store(&ks)
				k = &ks
			}
			if verbless.Load() && strings.IndexByte(lastSegment(r.URL.Path), ':') >= 0 {
				if allowed := snap.table.CustomMethodAllowed(r.URL.Path); len(allowed) > 0 {
					methodNotAllowed(w, allowed) // GET /v1/orders/o-1:cancel names the custom method, not an id
					return
				}
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
			if rt.ServerStreaming {
				s.streams.serve(stack, w, r) // ended by Shutdown (drain.go)
				return
			}
			stack.ServeHTTP(w, r)
		}
	}
}

// lastSegment returns what follows the last '/' of path.
func lastSegment(path string) string { return path[strings.LastIndexByte(path, '/')+1:] }

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
