package sse

import (
	"bytes"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/acme/shopgate/gateway/policy"
)

// Stage is the sse stage of one configuration.
type Stage struct {
	interval  time.Duration // <= 0: no heartbeats
	newTicker func(time.Duration) Ticker
}

// New returns the stage of cfg.
func New(cfg Config, opts Options) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Stage{interval: cfg.interval(), newTicker: opts.NewTicker}
	if s.newTicker == nil {
		s.newTicker = newTimeTicker
	}
	return s, nil
}

var (
	acceptSSE   = []string{MIME}
	keepAlive   = []byte(": keep-alive\n\n")
	headerEvent = []byte("event: error\n")
)

// Middleware chooses the framing of a server-streaming route's answer (see the package doc);
// every other request passes untouched.
func (s *Stage) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := policy.FromContext(r.Context())
		if rt == nil || !rt.ServerStreaming {
			next.ServeHTTP(w, r)
			return
		}
		if !Accepts(r.Header.Values("Accept")) {
			r.Header.Del("Accept") // the JSON marshaler: NDJSON
			next.ServeHTTP(w, r)
			return
		}
		r.Header["Accept"] = acceptSSE
		h := w.Header()
		h.Set("Cache-Control", "no-cache")
		h.Set("X-Accel-Buffering", "no")
		ew := &writer{ResponseWriter: w, rc: http.NewResponseController(w), stage: s, stop: make(chan struct{})}
		defer ew.close()
		next.ServeHTTP(ew, r)
	})
}

// writer numbers the events the marshaler frames, frames a stream's error, and writes the
// heartbeats; mu keeps a heartbeat from interleaving with an event.
type writer struct {
	http.ResponseWriter
	rc    *http.ResponseController
	stage *Stage

	mu      sync.Mutex
	seq     uint64
	started bool // an event was written: the 200 is sent
	wrote   bool // something was written since the last tick
	closed  bool
	stop    chan struct{}
	done    chan struct{} // closed when the heartbeat goroutine ends; nil before it starts
	buf     []byte
}

// Write takes one whole frame from grpc-gateway: an event from Marshaler, or a bare status.
func (w *writer) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case bytes.HasPrefix(b, dataPrefix):
		w.seq++
		w.buf = append(w.buf[:0], "id: "...)
		w.buf = strconv.AppendUint(w.buf, w.seq, 10)
		w.buf = append(w.buf, '\n')
		w.buf = append(w.buf, b...)
		if !w.started {
			w.started = true
			w.startHeartbeats()
		}
	case w.started: // the stream's status after its events
		w.buf = append(w.buf[:0], headerEvent...)
		w.buf = appendEvent(w.buf, "", b)
	default: // an error before any event: a plain google.rpc.Status body
		return w.ResponseWriter.Write(b)
	}
	w.wrote = true
	if _, err := w.ResponseWriter.Write(w.buf); err != nil {
		return 0, err
	}
	return len(b), nil
}

// Flush sends what was written.
func (w *writer) Flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	_ = w.rc.Flush()
}

// FlushError is Flush reporting its error (http.ResponseController prefers it).
func (w *writer) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.rc.Flush()
}

// Unwrap gives http.ResponseController the writer below.
func (w *writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// startHeartbeats starts the heartbeat goroutine; w.mu is held.
func (w *writer) startHeartbeats() {
	if w.stage.interval <= 0 {
		return
	}
	t := w.stage.newTicker(w.stage.interval)
	w.done = make(chan struct{})
	go func() {
		defer close(w.done)
		defer t.Stop()
		for {
			select {
			case <-w.stop:
				return
			case <-t.C():
				if !w.heartbeat() {
					return
				}
			}
		}
	}()
}

// heartbeat writes a keep-alive comment unless something was written since the last tick; it
// reports whether the stream can take more.
func (w *writer) heartbeat() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return false
	}
	if w.wrote {
		w.wrote = false
		return true
	}
	if _, err := w.ResponseWriter.Write(keepAlive); err != nil {
		return false
	}
	return w.rc.Flush() == nil
}

// close ends the heartbeats before the handler returns: nothing is written after it.
func (w *writer) close() {
	w.mu.Lock()
	w.closed = true
	done := w.done
	w.mu.Unlock()
	close(w.stop)
	if done != nil {
		<-done
	}
}
