package server

import (
	"context"
	"errors"
	"net/http"
	"sync"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Drain starts the first phase of a graceful shutdown: from now on /readyz answers 503 with
// {"ready":false,"draining":true,...} so that load balancers and Kubernetes take the replica
// out, while every other request is still served; each answer on the public listener carries
// Connection: close, so that a keep-alive client opens its next connection elsewhere (as
// Envoy's and Kong's drains do) instead of having an idle connection closed under it. Shutdown
// is the next phase. Safe to call more than once; there is no way back.
func (s *Server) Drain() { s.draining.Store(true) }

// Draining reports whether Drain was called.
func (s *Server) Draining() bool { return s.draining.Load() }

// errDraining is the cause of the cancellation of the server streams still open at Shutdown.
var errDraining = errors.New("gateway shutting down")

// msgDraining is what the final chunk (NDJSON) or event (SSE) of a stream ended by Shutdown
// says, with UNAVAILABLE: the client should reconnect, and will reach another replica.
const msgDraining = "the gateway is shutting down: reconnect"

// streamSet holds the cancel functions of the open server streams (:watch), which
// http.Server.Shutdown would otherwise wait for until their route timeout (300s for
// WatchOrder). Unary requests never enter it.
type streamSet struct {
	mu     sync.Mutex
	open   map[uint64]context.CancelCauseFunc // by a number of their own: keyed by the request, r would escape in routeStage, costing every request an allocation
	seq    uint64
	ending bool // Shutdown began: a stream that starts now ends at once
}

// serve runs a server-streaming request under a context that endAll cancels.
func (ss *streamSet) serve(h http.Handler, w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithCancelCause(r.Context())
	ss.mu.Lock()
	ss.seq++
	id := ss.seq
	if ss.ending {
		cancel(errDraining)
	} else {
		if ss.open == nil {
			ss.open = make(map[uint64]context.CancelCauseFunc)
		}
		ss.open[id] = cancel
	}
	ss.mu.Unlock()
	defer func() {
		ss.mu.Lock()
		delete(ss.open, id)
		ss.mu.Unlock()
		cancel(nil)
	}()
	h.ServeHTTP(w, r.WithContext(ctx))
}

// endAll cancels every open stream with errDraining, and every one that starts later. The
// stream's upstream call ends with CANCELLED and the client gets a final chunk (an SSE error
// event) of UNAVAILABLE msgDraining (streamErrorHandler), then the end of the response.
func (ss *streamSet) endAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.ending = true
	for _, cancel := range ss.open {
		cancel(errDraining)
	}
}

// drainingStatus returns the status of a stream that Shutdown ended, or nil.
func drainingStatus(ctx context.Context) *status.Status {
	if ctx.Err() != nil && context.Cause(ctx) == errDraining {
		return status.New(codes.Unavailable, msgDraining)
	}
	return nil
}
