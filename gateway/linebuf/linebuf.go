// Package linebuf is an io.Writer for log lines that never makes its callers wait for the sink:
// Write copies the line into memory and returns; one goroutine writes what accumulated to the
// sink, in order, a batch at a time. A request's access log line therefore costs a copy, not a
// write system call, and a sink that stalls (a full pipe, a slow disk, a stopped log
// collector) holds no request: once Options.MaxBuffered bytes are waiting, further lines are
// dropped and counted (Dropped) until the sink catches up, as Envoy's and nginx's buffered
// access logs do.
package linebuf

import (
	"context"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Options tunes a Writer. The zero value gives the defaults.
type Options struct {
	// FlushInterval is how long a line may wait before its batch is written. Default 200ms.
	FlushInterval time.Duration
	// FlushSize writes the batch at once when this many bytes are waiting. Default 64 KiB.
	FlushSize int
	// MaxBuffered is the most bytes held for the sink, the batch being written included; a line
	// that does not fit is dropped. Default 4 MiB.
	MaxBuffered int
}

// Defaults of Options.
const (
	DefaultFlushInterval = 200 * time.Millisecond
	DefaultFlushSize     = 64 << 10
	DefaultMaxBuffered   = 4 << 20
)

// Writer buffers lines for a sink. Make one with New; Close it to write what is left and stop
// its goroutine.
type Writer struct {
	sink    io.Writer
	opts    Options
	dropped atomic.Uint64

	mu       sync.Mutex
	pending  []byte // lines not yet handed to the sink
	spare    []byte // the buffer of the batch being written, reused
	inFlight int    // bytes of the batch being written
	closed   bool

	wake    chan struct{} // a line arrived in an empty buffer (capacity 1)
	full    chan struct{} // FlushSize bytes are waiting (capacity 1)
	closing chan struct{}
	stopped chan struct{}
}

// New returns a Writer for sink and starts its goroutine. Only that goroutine calls sink.Write,
// so sink need not be safe for concurrent use by this Writer (it must be if others write to it
// too).
func New(sink io.Writer, opts Options) *Writer {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.FlushSize <= 0 {
		opts.FlushSize = DefaultFlushSize
	}
	if opts.MaxBuffered <= 0 {
		opts.MaxBuffered = DefaultMaxBuffered
	}
	w := &Writer{
		sink: sink, opts: opts,
		wake: make(chan struct{}, 1), full: make(chan struct{}, 1),
		closing: make(chan struct{}), stopped: make(chan struct{}),
	}
	go w.run()
	return w
}

// Write queues a copy of p (one line, or several whole lines) and returns len(p), nil at once.
// When p does not fit in MaxBuffered, or the Writer is closed, p is dropped and counted.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed || len(w.pending)+w.inFlight+len(p) > w.opts.MaxBuffered {
		w.mu.Unlock()
		w.dropped.Add(1)
		return len(p), nil
	}
	first := len(w.pending) == 0
	w.pending = append(w.pending, p...)
	full := len(w.pending) >= w.opts.FlushSize
	w.mu.Unlock()
	if first {
		signal(w.wake)
	}
	if full {
		signal(w.full)
	}
	return len(p), nil
}

// signal sends on a channel of capacity 1 without waiting: one pending signal is enough.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Dropped returns how many writes were dropped because the sink fell behind or the Writer was
// closed.
func (w *Writer) Dropped() uint64 { return w.dropped.Load() }

// Close writes what is buffered, stops the goroutine and returns. Later writes are dropped.
// Safe to call more than once. It waits for the sink as long as the sink takes: a program
// exiting past a sink that may be stuck uses Shutdown.
func (w *Writer) Close() error { return w.Shutdown(context.Background()) }

// Shutdown is Close that gives up waiting when ctx ends, returning ctx's error: the last batch
// is then left to a sink that may never take it, and the goroutine ends when the sink returns.
func (w *Writer) Shutdown(ctx context.Context) error {
	w.mu.Lock()
	already := w.closed
	w.closed = true
	w.mu.Unlock()
	if !already {
		close(w.closing)
	}
	select {
	case <-w.stopped:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// run waits for a first line, gives the batch FlushInterval (or until FlushSize) to grow, and
// writes it; at Close it writes what is left.
func (w *Writer) run() {
	defer close(w.stopped)
	timer := time.NewTimer(w.opts.FlushInterval)
	timer.Stop()
	for {
		select {
		case <-w.wake:
		case <-w.closing:
			w.flush()
			return
		}
		timer.Reset(w.opts.FlushInterval)
		select {
		case <-timer.C:
		case <-w.full:
			timer.Stop()
		case <-w.closing:
			timer.Stop()
			w.flush()
			return
		}
		w.flush()
	}
}

// flush hands the pending lines to the sink, outside the lock: writers go on filling pending
// meanwhile.
func (w *Writer) flush() {
	select {
	case <-w.full: // this batch answers the size signals raised so far; later ones stay
	default:
	}
	w.mu.Lock()
	batch := w.pending
	w.pending = w.spare[:0]
	w.inFlight = len(batch)
	w.mu.Unlock()
	if len(batch) > 0 {
		_, _ = w.sink.Write(batch) // a failing sink loses the batch; nothing else can be done with it
	}
	w.mu.Lock()
	w.spare, w.inFlight = batch[:0], 0
	w.mu.Unlock()
}
