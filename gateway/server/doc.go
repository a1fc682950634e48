// Package server is the factory that assembles the whole gateway: the route table, the policy
// stages, the pipeline that orders them (declare in pipeline.go, the one place the order is
// written down; see gateway/pipeline), the upstream connections and the handler.
//
// Build and run one:
//
//	cfg, err := config.Load("gateway.yaml")
//	...
//	srv, err := server.New(cfg, server.Options{Logger: logger, Registerer: registry, Services: shopapi.Services()})
//	...
//	go srv.Serve(ln)            // or srv.ListenAndServe() on cfg.Listen
//	go srv.ServeAdmin(adminLn)  // with server.admin_listen: /metrics, /readyz, /admin/* (admin.go)
//	...
//	err = srv.Reload(newCfg)     // SIGHUP: swap the reloadable parts atomically
//	srv.Drain()                  // SIGTERM: /readyz fails for server.drain_delay, all else served
//	err = srv.Shutdown(ctx)      // then: close the listener, end streams, finish in-flight requests
//
// srv.Handler() is the gateway as an http.Handler, for httptest servers and benchmarks.
//
// What a client sees:
//   - every error is a google.rpc.Status JSON (gateway/httperror): 400 for malformed JSON, a
//     wrong type or an unknown field; 404 for an unknown path; 405 with Allow for a known path
//     and the wrong method; 413 for a body over limits.max_body_bytes (Content-Length or
//     chunked); 422 when the upstream's status carries ErrorInfo reason IDEMPOTENCY_KEY_REUSED;
//     503 when the upstream is down (or the route's fallback, with X-Gateway-Fallback: true);
//     504 when the route's timeout expires. INTERNAL, UNKNOWN and DATA_LOSS texts are
//     replaced; UNAVAILABLE, DEADLINE_EXCEEDED and CANCELLED get fixed texts (the transport's
//     text names internal addresses).
//   - responses are protojson, lowerCamelCase, with unpopulated fields emitted.
//   - no upstream header or trailer reaches the client; every response has X-Request-Id.
//
// What an upstream sees: the verified caller's passport (x-passport, signed by the gateway for
// that service: gateway/passport; none for an anonymous caller), x-request-id, idempotency-key, traceparent, tracestate, accept-language and a few
// harmless grpcgateway-* headers (headers.go). With tracing on (Options.TracerProvider) the
// traceparent and tracestate are the gateway's own client span's, not the client's. Never Authorization, cookies, X-Forwarded-*, or
// client-sent Grpc-Metadata-*; a deadline no later than the route's timeout.
//
// Not reloadable: listen, upstreams, the server and passport sections (Reload refuses a change). Metrics
// of the policy stages are registered by the stages themselves on the same Registerer at each
// reload.
//
// Options.AccessLog takes the access log apart from the other logs; a logger not enabled at
// Info (slog.New(slog.DiscardHandler)) turns it off at no cost per request.
package server
