// Package edge holds the gateway's outermost net/http middleware: panic recovery, request ids,
// the access log and request metrics, and the body size limit. The factory (gateway/server)
// puts them in order; each is also usable alone.
//
// The layers share one per-request State (created by the outermost layer that needs it and kept
// in the request's context), so that the whole edge costs one small allocation per request.
package edge

import (
	"context"
	"net/http"
	"time"

	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
)

// State is what the edge layers know about one request. The route stage fills RPC; the factory
// may keep its own per-request data in Data.
type State struct {
	// parent is the request's context: State is itself the context the layers below see
	// (Value answers for the State and delegates the rest), which saves an allocation.
	parent context.Context
	rec    recorder
	// RequestID is the request's id (the client's X-Request-Id when well-formed, else generated).
	RequestID string
	// RPC is the full gRPC method the request was routed to; empty when no route matched.
	RPC string
	// Route is the request's route once matched; the State answers policy.FromContext with it
	// (policy.ContextKey), so the router need not derive a new context. Nil before routing.
	Route *policy.Route
	// Data is a free slot for the factory's own per-request data.
	Data any
	// Pool is the upstream pool the request's calls go to (gateway/traffic), set by the pool
	// stage for a service with pools, and changed to PoolFallback when the call falls back;
	// the access log shows it. Empty: the service has no pools.
	Pool string
	// PoolFallback is where the calls go while Pool has no ready instance; empty: nowhere.
	PoolFallback string
	// Traced says that the trace stage put the request's span in its context: the access log
	// and the metrics look for it only then (no context walk per request with tracing off).
	Traced bool

	identity    identity.Identity // the verified caller (WithIdentity); valid when hasIdentity
	hasIdentity bool

	body         limitedBody
	bodyTooLarge bool
	bodyErr      error     // what reading the body failed with (not EOF, not the limit)
	idBuf        [1]string // backs the forwarded X-Request-Id header value
}

// The context.Context methods: State wraps the request's context.
func (s *State) Deadline() (time.Time, bool) { return s.parent.Deadline() }
func (s *State) Done() <-chan struct{}       { return s.parent.Done() }
func (s *State) Err() error                  { return s.parent.Err() }
func (s *State) Value(key any) any {
	switch key {
	case stateKey{}:
		return s
	case routeKey:
		if s.Route != nil {
			return s.Route
		}
	case identityKey:
		if s.hasIdentity {
			return &s.identity
		}
	}
	return s.parent.Value(key)
}

var (
	routeKey    = policy.ContextKey()
	identityKey = identity.ContextKey()
)

// WithIdentity returns r carrying id for identity.FromContext. When r's context holds the edge
// State (the gateway's stack), the State keeps id and r is returned as it is: no new context
// and no copy of the request. Otherwise it is r.WithContext(identity.NewContext(...)).
func WithIdentity(r *http.Request, id identity.Identity) *http.Request {
	if s := StateFrom(r.Context()); s != nil {
		s.identity, s.hasIdentity = id, true
		return r
	}
	return r.WithContext(identity.NewContext(r.Context(), id))
}

type stateKey struct{}

// StateFrom returns the request's State, or nil outside the edge.
func StateFrom(ctx context.Context) *State {
	s, _ := ctx.Value(stateKey{}).(*State)
	return s
}

// BodyTooLarge reports whether the request's body was cut by the body limit: the error handler
// answers 413 instead of the decoder's 400.
func BodyTooLarge(ctx context.Context) bool {
	s := StateFrom(ctx)
	return s != nil && s.bodyTooLarge
}

// BodyReadError returns what reading the request's body failed with, other than its end or
// the body limit: a read timeout (server.read_timeout: the client stalled) or a broken
// connection. Nil when the body was read whole, or not read. The error handler answers 408 or
// 400 for it with a fixed text: the error's own text names addresses.
func BodyReadError(ctx context.Context) error {
	if s := StateFrom(ctx); s != nil {
		return s.bodyErr
	}
	return nil
}

// Ensure returns the request's State, creating it (and wrapping w in its recorder, and r's
// context) when no outer layer did. Layers below the edge use it to reach the State.
func Ensure(w http.ResponseWriter, r *http.Request) (*State, http.ResponseWriter, *http.Request) {
	return ensure(w, r)
}

func ensure(w http.ResponseWriter, r *http.Request) (*State, http.ResponseWriter, *http.Request) {
	if s := StateFrom(r.Context()); s != nil {
		return s, w, r
	}
	s := &State{parent: r.Context()}
	s.rec.ResponseWriter = w
	return s, &s.rec, r.WithContext(s)
}

// recorder remembers the status and size of the response. Flush passes through (streams
// flush each message); a unary reply is sent by net/http when the handler returns, after the
// access log and metrics, which take a copy of a line and a few counters and never wait on a
// sink (gateway/linebuf).
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush sends what was written so far (streams).
func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap serves http.ResponseController.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// RoutePath returns the matched route's template ("/v1/orders/{id}:cancel"), or "" before
// routing and when no route matched.
func (s *State) RoutePath() string {
	if s.Route == nil {
		return ""
	}
	return s.Route.Path
}

// Status returns the response status written so far (0 before the header).
func (s *State) Status() int { return s.rec.status }

// Bytes returns the body bytes written so far.
func (s *State) Bytes() int64 { return s.rec.bytes }
