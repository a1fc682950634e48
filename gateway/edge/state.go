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
	"strconv"
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

	identity    identity.Identity // the verified caller (WithIdentity); valid when hasIdentity
	hasIdentity bool

	body         limitedBody
	bodyTooLarge bool
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
	s.rec.early = r.ProtoMajor == 1
	return s, &s.rec, r.WithContext(s)
}

// recorder remembers the status and size of the response, and sends a response whose
// Content-Length is declared as soon as its last byte is written: the client then has its
// answer while the layers around the handler (access log, metrics, the route deadline's
// cleanup) finish, instead of after them. A response without a declared length (a stream, or
// one net/http measures itself), or to an HTTP/2 request (where the flush would cost a frame of
// its own before the one that ends the stream), is sent as net/http decides.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
	length int64 // the declared Content-Length, read at the first Write; -1 when none
	early  bool  // send the reply at its last declared byte (HTTP/1 requests)
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
	if r.bytes == 0 && r.early { // the header is final from the first byte on
		r.length = declaredLength(r.ResponseWriter.Header())
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	if r.length > 0 && r.bytes == r.length {
		r.Flush()
	}
	return n, err
}

// declaredLength is the response's Content-Length, or -1 when it has none (or a bad one).
func declaredLength(h http.Header) int64 {
	v := h["Content-Length"]
	if len(v) != 1 {
		return -1
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return -1
	}
	return n
}

// Flush lets streaming responses (server streaming RPCs) through.
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

// Status returns the response status written so far (0 before the header).
func (s *State) Status() int { return s.rec.status }

// Bytes returns the body bytes written so far.
func (s *State) Bytes() int64 { return s.rec.bytes }
