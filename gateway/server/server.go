package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/shopgate/gateway/breaker"
	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/connlimit"
	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/httperror"
	"github.com/acme/shopgate/gateway/metrics"
	"github.com/acme/shopgate/gateway/openapi"
	"github.com/acme/shopgate/gateway/passport"
	"github.com/acme/shopgate/gateway/pipeline"
	"github.com/acme/shopgate/gateway/routes"
	"github.com/acme/shopgate/gateway/sse"
	"github.com/acme/shopgate/gateway/tracing"
	"github.com/acme/shopgate/gateway/upstream"
	"github.com/prometheus/client_golang/prometheus"
	oteltrace "go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Options carries what the process provides. The zero value is usable.
type Options struct {
	// Logger for state changes and errors. Default: slog.Default().
	Logger *slog.Logger
	// AccessLog receives one line per request. Default: Logger. A logger not enabled at Info
	// (slog.New(slog.DiscardHandler)) turns the access log off at no cost per request.
	AccessLog *slog.Logger
	// AccessLogWriter, when set, receives the access log instead of AccessLog: one JSON line
	// per request, written by the gateway's own encoder in slog.JSONHandler's format (the same
	// fields, without the logger's own attributes), at a fraction of a slog record's cost; one
	// Write per line, serialized, in the request's goroutine after its handler: a writer that
	// can block (a pipe, a file) belongs behind gateway/linebuf, as cmd/gateway puts it.
	// Default: nil (AccessLog).
	AccessLogWriter io.Writer
	// Registerer receives every metric of the gateway. Default: a private registry.
	Registerer prometheus.Registerer
	// Gatherer is what GET /metrics serves. Default: Registerer when it is a Gatherer (a
	// *prometheus.Registry), else the private registry.
	Gatherer prometheus.Gatherer
	// Services are the gRPC services the gateway can serve (their descriptors and generated
	// registrations; internal/shopapi lists the shop's). Every route of every one is in the route
	// table; those with an upstream in the configuration are served. Required for any upstream.
	Services []routes.Service
	// DialOptions are added to every upstream connection (tests add a bufconn dialer).
	DialOptions []grpc.DialOption
	// OpenAPI titles and describes the API reference (GET /openapi.json, GET /docs): its title
	// and the protos' comments (openapi.ParseComments). The gateway adds the rest from each
	// configuration snapshot (routes, policy, API keys). Default: the zero value (openapi.Options).
	OpenAPI openapi.Options
	// Handlers are served at their exact path, before any route and outside the policy
	// stages, like /healthz (the dev stack serves its JWKS this way). A path that a route or
	// a built-in endpoint also serves is refused by New. Default: none.
	Handlers map[string]http.Handler
	// TracerProvider traces every request (the trace stage) and upstream call (gateway/tracing);
	// the client's traceparent is then continued, not forwarded as is. Default: nil, tracing
	// off at no cost per request.
	TracerProvider oteltrace.TracerProvider

	trace        pipeline.Trace                 // tests: records each stage a request passes
	pressureIdle time.Duration                  // tests: connlimit.Config.PressureIdleTimeout (default 5s)
	sseTicker    func(time.Duration) sse.Ticker // tests: the SSE heartbeat ticks (default time.NewTicker)
	cacheNow     func() time.Time               // tests: the response cache's clock (default time.Now)
}

// Server is the gateway: an http.Handler, the upstream connections, and the current
// snapshot of the reloadable configuration.
type Server struct {
	logger    *slog.Logger
	accessLog *slog.Logger
	accessW   io.Writer      // Options.AccessLogWriter; when set, the access log goes there
	static    *config.Config // the configuration the process started with (listen, upstreams)
	reg       prometheus.Registerer
	gatherer  prometheus.Gatherer
	metrics   *metrics.Metrics
	breakers  *breaker.Breakers
	passport  *passport.Signer // the passport stage; its keys are watched, not reloaded
	services  registry
	addrs     map[string]map[string][]string // upstream addresses by service and pool, fixed at start
	dial      upstream.Options               // what every upstream dial shares; retries are added per snapshot
	listenTLS *tls.Config                    // server.tls, or nil: plain HTTP (tls.go)
	httpSrv   *http.Server
	adminSrv  *http.Server            // server.admin_listen's (admin.go); nil without it
	draining  atomic.Bool             // Drain was called (drain.go)
	streams   streamSet               // the open server streams, ended by Shutdown (drain.go)
	connLimit *connlimit.Limiter      // server.max_connections over every listener Serve is given
	ambiguous prometheus.Counter      // requests refused for both Content-Length and Transfer-Encoding
	builtin   http.Handler            // health and metrics endpoints, with a request id
	extra     map[string]http.Handler // Options.Handlers, with a request id
	openapi   openapi.Options         // Options.OpenAPI
	reference http.Handler            // GET /openapi.json and /docs, with a request id

	cur      atomic.Pointer[snapshot]
	reloadMu sync.Mutex
	closed   atomic.Bool

	trace     pipeline.Trace                 // tests: records each stage a request passes
	sseTicker func(time.Duration) sse.Ticker // tests: the heartbeat clock (Options.sseTicker)
	cacheNow  func() time.Time               // tests: the response cache's clock (Options.cacheNow)
	tracer    oteltrace.TracerProvider       // Options.TracerProvider; nil: tracing off
}

// New builds the gateway from cfg and opts.Services: metrics, the circuit breakers, and the
// first snapshot (route table, policy stages, the pipeline declared over them, the upstream
// connections; see declare in pipeline.go for the order). cfg must come from config.Parse or
// Load.
func New(cfg *config.Config, opts Options) (*Server, error) {
	if cfg == nil {
		return nil, errors.New("creating gateway: nil config")
	}
	s := &Server{logger: opts.Logger, static: cfg, reg: opts.Registerer, gatherer: opts.Gatherer, trace: opts.trace, openapi: opts.OpenAPI, sseTicker: opts.sseTicker, cacheNow: opts.cacheNow, tracer: opts.TracerProvider}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	s.accessLog, s.accessW = opts.AccessLog, opts.AccessLogWriter
	if s.accessLog == nil {
		s.accessLog = s.logger
	}
	if s.reg == nil {
		r := prometheus.NewRegistry()
		s.reg, s.gatherer = r, r
	}
	if s.gatherer == nil {
		if g, ok := s.reg.(prometheus.Gatherer); ok {
			s.gatherer = g
		} else {
			s.gatherer = prometheus.NewRegistry()
		}
	}
	var err error
	if s.services, err = newRegistry(opts.Services); err != nil {
		return nil, fmt.Errorf("creating gateway: %w", err)
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		if _, ok := s.services[name]; !ok {
			return nil, fmt.Errorf("creating gateway: upstreams: %q is not among the services the gateway was given", name)
		}
	}
	if s.metrics, err = metrics.New(metrics.Config{}, s.reg); err != nil {
		return nil, fmt.Errorf("creating gateway: %w", err)
	}
	if s.breakers, err = breaker.New(cfg.Breaker, breaker.Options{Logger: s.logger, Registerer: s.reg}); err != nil {
		return nil, fmt.Errorf("creating gateway: %w", err)
	}
	if s.passport, err = passport.New(cfg.Passport, passport.Options{Logger: s.logger}); err != nil {
		return nil, fmt.Errorf("creating gateway: %w", err)
	}
	s.addrs = make(map[string]map[string][]string, len(cfg.Upstreams))
	for name, u := range cfg.Upstreams {
		s.addrs[name] = u.Addrs()
	}
	s.dial = upstream.Options{DialOptions: append(tracing.DialOptions(s.tracer), opts.DialOptions...)} // each snapshot's pipeline adds its client and transport stages
	if err := s.setupTLS(cfg); err != nil {
		return nil, fmt.Errorf("creating gateway: %w", err)
	}
	snap, err := s.newSnapshot(cfg) // the route table, the stages, the pipeline, the connections
	if err != nil {
		return nil, fmt.Errorf("creating gateway: %w", err)
	}
	s.cur.Store(snap)
	if s.extra, err = s.wrapHandlers(opts.Handlers); err != nil {
		snap.release()
		return nil, fmt.Errorf("creating gateway: %w", err)
	}
	if s.connLimit, err = connlimit.New(connlimit.Config{Max: cfg.Server.MaxConnections, PressureIdleTimeout: opts.pressureIdle}, s.reg); err != nil {
		snap.release()
		return nil, fmt.Errorf("creating gateway: %w", err)
	}
	s.ambiguous = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "gateway_http_ambiguous_framing_total",
		Help: "Requests refused with 400 for carrying both Content-Length and Transfer-Encoding.",
	})
	if s.ambiguous, err = metrics.RegisterOrReuse(s.reg, s.ambiguous); err != nil {
		snap.release()
		return nil, fmt.Errorf("creating gateway: %w", err)
	}
	metricsH := promHandler(s.gatherer)
	s.builtin = edge.Recover(s.logger)(edge.RequestID(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case PathHealthz:
			s.healthz(w, r)
		case PathReadyz:
			s.readyz(w, r)
		default:
			metricsH.ServeHTTP(w, r)
		}
	})))
	s.reference = edge.Recover(s.logger)(edge.RequestID(http.HandlerFunc(s.serveReference)))
	srv := cfg.Server
	s.httpSrv = &http.Server{
		Addr:              cfg.Listen,
		Handler:           s,
		ReadHeaderTimeout: srv.ReadHeaderTimeout,
		ReadTimeout:       srv.ReadTimeout,
		WriteTimeout:      srv.WriteTimeout, // 0 by default: :watch streams are bounded by their route timeout
		IdleTimeout:       srv.IdleTimeout,
		MaxHeaderBytes:    srv.MaxHeaderBytes,
		ConnState:         s.connLimit.ConnState, // idle keep-alive connections close sooner near max_connections
		ConnContext:       edge.ConnContext,      // for edge.AmbiguousFraming
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
		Protocols:         s.protocols(), // nil without server.tls
	}
	s.adminSrv = s.newAdminServer(s.httpSrv)
	return s, nil
}

// wrapHandlers checks that no extra handler hides a built-in endpoint or a route, and wraps
// each in panic recovery and a request id.
func (s *Server) wrapHandlers(hs map[string]http.Handler) (map[string]http.Handler, error) {
	if len(hs) == 0 {
		return nil, nil
	}
	table := s.cur.Load().table
	out := make(map[string]http.Handler, len(hs))
	for path, h := range hs {
		switch {
		case !strings.HasPrefix(path, "/") || h == nil:
			return nil, fmt.Errorf("handler %q: want an absolute path and a handler", path)
		case path == PathHealthz || path == PathReadyz || path == PathMetrics || openapi.IsPath(path):
			return nil, fmt.Errorf("handler %q: a built-in endpoint of the gateway", path)
		case len(table.Allowed(path)) > 0:
			return nil, fmt.Errorf("handler %q: the path of a route", path)
		}
		out[path] = edge.Recover(s.logger)(edge.RequestID(h))
	}
	return out, nil
}

// methodNotAllowedHandler answers a built-in endpoint called with a method other than GET or
// HEAD.
var methodNotAllowedHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	methodNotAllowed(w, []string{http.MethodGet})
})

// Handler returns the gateway as an http.Handler (the server itself).
func (s *Server) Handler() http.Handler { return s }

// refuseAmbiguousFraming refuses a request whose head carried both Content-Length and
// Transfer-Encoding, and closes the connection after the answer.
var refuseAmbiguousFraming = edge.RequestID(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Connection", "close")
	httperror.Write(w, status.New(codes.InvalidArgument, "request has both Content-Length and Transfer-Encoding"))
}))

// ServeHTTP serves the health endpoints and hands every other request to the current snapshot,
// which it holds until the request ends (a reload never pulls it away mid-request).
//
// A request whose head carried both Content-Length and Transfer-Encoding (edge.AmbiguousFraming)
// is refused first of all with 400 (counted in gateway_http_ambiguous_framing_total) and the
// connection is closed after it. RFC 9112 allows
// serving it by Transfer-Encoding as long as the connection is closed afterwards; refusing it,
// as Envoy and nginx do by default, also answers nothing that a proxy in front may have framed
// differently (a smuggling attempt), and no honest client sends both.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if edge.AmbiguousFraming(r) {
		s.ambiguous.Inc() // not in the access log: it comes before the pipeline, like net/http's own 400s
		refuseAmbiguousFraming.ServeHTTP(w, r)
		return
	}
	if s.draining.Load() { // drain.go: the client's next connection goes to another replica
		w.Header().Set("Connection", "close")
	}
	switch r.URL.Path {
	case PathHealthz, PathReadyz, PathMetrics:
		if r.URL.Path == PathHealthz || s.adminSrv == nil { // else on the admin listener only: 404 below
			s.serveBuiltin(w, r)
			return
		}
	case openapi.PathDocument, openapi.PathUI, openapi.PathUIInit, openapi.PathUIBundle, openapi.PathUICSS:
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			edge.RequestID(methodNotAllowedHandler).ServeHTTP(w, r)
			return
		}
		s.reference.ServeHTTP(w, r) // public, like the health endpoints
		return
	}
	if h, ok := s.extra[r.URL.Path]; ok {
		h.ServeHTTP(w, r)
		return
	}
	s.serveSnapshot(w, r)
}

// serveBuiltin answers the health and metrics endpoints: GET and HEAD only.
func (s *Server) serveBuiltin(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		edge.RequestID(methodNotAllowedHandler).ServeHTTP(w, r)
		return
	}
	s.builtin.ServeHTTP(w, r) // not logged nor counted: probes and scrapes would drown the rest
}

// serveSnapshot hands r to the current snapshot's pipeline.
func (s *Server) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	snap := s.acquire()
	if snap == nil {
		httperror.Write(w, status.New(codes.Unavailable, "shutting down"))
		return
	}
	defer snap.release()
	snap.handler.ServeHTTP(w, r)
}

// Serve accepts connections on ln until Shutdown. It returns http.ErrServerClosed after
// Shutdown. The answers net/http gives itself (431 for headers over the limit, 400 for a
// malformed request) leave as google.rpc.Status with X-Request-Id too (edge.Listener).
// server.max_connections bounds the connections open at once, across every listener served: a
// connection beyond it is accepted and closed at once, and from 80% of it on, keep-alive
// connections idle for 5s are closed (gateway/connlimit).
func (s *Server) Serve(ln net.Listener) error {
	return s.httpSrv.Serve(s.connLimit.Listener(edge.Listener(s.tlsListener(ln))))
}

// ListenAndServe listens on the configured address and serves, like Serve.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.static.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	return s.Serve(ln)
}

// Shutdown stops accepting connections, lets in-flight requests finish (until ctx ends), then
// releases the policy stages and closes the upstream connections. New requests are refused
// cleanly by http.Server.Shutdown (listeners closed, idle connections closed). The server
// streams still open (:watch) are ended at once, each with a last chunk (an SSE error event)
// of UNAVAILABLE "the gateway is shutting down: reconnect", rather than held until their route
// timeout. The admin listener (server.admin_listen) closes last, once the public one is done.
// Drain, called some time before, is the phase that lets load balancers move away first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.streams.endAll()
	err := s.httpSrv.Shutdown(ctx)
	if s.adminSrv != nil {
		err = errors.Join(err, s.adminSrv.Shutdown(ctx))
	}
	return errors.Join(err, s.Close())
}

// Close releases the snapshot and closes the upstream connections at once, without waiting
// for requests. Safe to call twice.
func (s *Server) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	_ = s.httpSrv.Close()
	if s.adminSrv != nil {
		_ = s.adminSrv.Close()
	}
	var err error
	if snap := s.cur.Load(); snap != nil {
		err = snap.conns.set.Close() // at once, even under requests still holding the snapshot
		snap.release()
	}
	return err
}

// Reload builds a new snapshot from cfg (route table, auth, rate limit, IP rules, CORS, client
// IP, body limit, route timeouts and retry policies, traffic rules and weights, and the
// pipeline over them) with the same factory as New and swaps it in atomically; requests in
// flight finish on the old one, which is closed once they are done. Route timeouts and retry
// policies are the upstream connections' service config: when they change (a route's timeout
// or idempotent flag, the retry section), the new snapshot dials new upstream connections and
// waits (up to reloadReadyTimeout) until those the old ones had READY are READY too; otherwise
// it shares the old connections. Breaker settings are applied through Breakers.Update. The
// listen address, the upstreams' addresses and pools, and the server section (HTTP timeouts
// and sizes) cannot be reloaded: a cfg that changes them is refused. On any error nothing
// changes.
func (s *Server) Reload(cfg *config.Config) error {
	s.reloadMu.Lock()
	defer s.reloadMu.Unlock()
	if s.closed.Load() {
		return errors.New("reloading: server closed")
	}
	if cfg.Listen != s.static.Listen {
		return fmt.Errorf("reloading: listen changed from %q to %q: restart the gateway to change it", s.static.Listen, cfg.Listen)
	}
	if !sameAddresses(cfg.Upstreams, s.static.Upstreams) {
		return errors.New("reloading: upstreams changed (addresses or pools): restart the gateway to change them; their rules reload")
	}
	if cfg.Server != s.static.Server {
		return errors.New("reloading: server settings changed: restart the gateway to change them")
	}
	if err := sameTLS(cfg, s.static); err != nil {
		return err
	}
	if cfg.Passport != s.static.Passport {
		return errors.New("reloading: passport settings changed: restart the gateway to change them (its key folder is watched)")
	}
	snap, err := s.newSnapshot(cfg)
	if err != nil {
		return fmt.Errorf("reloading: %w", err)
	}
	if prev := s.cur.Load(); snap.conns != prev.conns {
		ctx, cancel := context.WithTimeout(context.Background(), reloadReadyTimeout)
		err := snap.conns.set.WaitReadyAs(ctx, prev.conns.set)
		cancel()
		if err != nil {
			snap.release()
			return fmt.Errorf("reloading: new upstream connections: %w", err)
		}
	}
	if err := s.breakers.Update(cfg.Breaker); err != nil {
		snap.release()
		return fmt.Errorf("reloading: breaker: %w", err)
	}
	old := s.cur.Swap(snap)
	old.release()
	return nil
}

// sameAddresses reports whether a and b name the same upstreams with the same pools and
// addresses: what a reload cannot change. Their traffic rules may differ.
func sameAddresses(a, b map[string]config.Upstream) bool {
	if len(a) != len(b) {
		return false
	}
	for name, u := range a {
		v, ok := b[name]
		if !ok || !reflect.DeepEqual(u.Addrs(), v.Addrs()) {
			return false
		}
	}
	return true
}

// reloadReadyTimeout bounds how long Reload waits for the connections of new retry policies.
const reloadReadyTimeout = 5 * time.Second

// Config returns the configuration of the current snapshot.
func (s *Server) Config() *config.Config { return s.cur.Load().cfg }

// acquire returns the current snapshot with a reference held, or nil once the server closed.
func (s *Server) acquire() *snapshot {
	for {
		snap := s.cur.Load()
		if snap.tryAcquire() {
			return snap
		}
		if s.cur.Load() == snap { // released and not replaced: closed
			return nil
		}
	}
}
