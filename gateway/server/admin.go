package server

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/httperror"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// PathAdminPrefix starts the paths of the gateway's admin endpoints (PathAbuseBlocks,
// PathRoutes): with server.admin_listen set they are served on the admin listener only.
const PathAdminPrefix = "/admin/"

// adminListenerKey marks the context of a request that came in on the admin listener.
type adminListenerKey struct{}

// newAdminServer returns the http.Server of server.admin_listen, or nil when it is not set.
// It has the public server's timeouts and sizes; server.max_connections does not count its
// connections (the probes and scrapes must get in when the public port is full).
func (s *Server) newAdminServer(pub *http.Server) *http.Server {
	if s.static.Server.AdminListen == "" {
		return nil
	}
	return &http.Server{
		Addr:              s.static.Server.AdminListen,
		Handler:           http.HandlerFunc(s.serveAdmin),
		ReadHeaderTimeout: pub.ReadHeaderTimeout,
		ReadTimeout:       pub.ReadTimeout,
		WriteTimeout:      pub.WriteTimeout,
		IdleTimeout:       pub.IdleTimeout,
		MaxHeaderBytes:    pub.MaxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			return context.WithValue(edge.ConnContext(ctx, c), adminListenerKey{}, true)
		},
		ErrorLog: pub.ErrorLog,
	}
}

// ServeAdmin accepts connections of the admin listener (server.admin_listen) on ln until
// Shutdown, which closes it after the public listener's in-flight requests finished, so
// that /readyz stays observable during the whole drain. It serves /healthz, /readyz, /metrics
// and /admin/* (through the same stages as on the public listener before: auth, an admin's
// role); any other path is 404. Without server.admin_listen it returns an error at once.
func (s *Server) ServeAdmin(ln net.Listener) error {
	if s.adminSrv == nil {
		_ = ln.Close()
		return errNoAdminListener
	}
	return s.adminSrv.Serve(edge.Listener(ln))
}

// errNoAdminListener is ServeAdmin's error without server.admin_listen.
var errNoAdminListener = errors.New("serving admin: server.admin_listen is not set")

// serveAdmin is the admin listener's handler.
func (s *Server) serveAdmin(w http.ResponseWriter, r *http.Request) {
	if edge.AmbiguousFraming(r) {
		s.ambiguous.Inc()
		refuseAmbiguousFraming.ServeHTTP(w, r)
		return
	}
	switch p := r.URL.Path; {
	case p == PathHealthz || p == PathReadyz || p == PathMetrics:
		s.serveBuiltin(w, r)
	case strings.HasPrefix(p, PathAdminPrefix):
		s.serveSnapshot(w, r) // the pipeline's admin stages, as on the public listener without admin_listen
	default:
		edge.RequestID(notFoundHandler).ServeHTTP(w, r)
	}
}

// notFoundHandler answers 404 as google.rpc.Status.
var notFoundHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
	httperror.Write(w, status.New(codes.NotFound, "not found"))
})

// adminHere reports whether r may reach an admin endpoint (or /readyz, /metrics): always
// without server.admin_listen, else only on the admin listener.
func (s *Server) adminHere(r *http.Request) bool {
	return s.adminSrv == nil || r.Context().Value(adminListenerKey{}) != nil
}
