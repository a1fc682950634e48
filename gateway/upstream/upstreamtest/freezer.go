// Package upstreamtest holds test helpers for the gateway's upstream connections.
package upstreamtest

import (
	"net"
	"sync"
	"testing"
)

// Freezer is a TCP proxy in front of a backend that can be frozen: it then neither accepts,
// reads nor writes, in both directions, while the kernel keeps the connections open and
// completes new handshakes. That is what a SIGSTOPped process looks like to its clients.
type Freezer struct {
	ln      net.Listener
	backend string
	done    chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	thawed chan struct{} // nil while running; closed at thaw
	conns  map[net.Conn]struct{}
}

// NewFreezer starts a proxy on a free 127.0.0.1 port in front of backend (host:port), running
// (not frozen); the test's cleanup closes it and stops its goroutines.
func NewFreezer(t testing.TB, backend string) *Freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &Freezer{ln: ln, backend: backend, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

// Addr is the proxy's address, to dial instead of the backend's.
func (f *Freezer) Addr() string { return f.ln.Addr().String() }

// Freeze stops the proxy: nothing is accepted, read or written until Thaw.
func (f *Freezer) Freeze() {
	f.mu.Lock()
	if f.thawed == nil {
		f.thawed = make(chan struct{})
	}
	f.mu.Unlock()
}

// Thaw lets the proxy run again: the bytes it held go on, in order.
func (f *Freezer) Thaw() {
	f.mu.Lock()
	if f.thawed != nil {
		close(f.thawed)
		f.thawed = nil
	}
	f.mu.Unlock()
}

// wait blocks while frozen; false when the proxy closes.
func (f *Freezer) wait() bool {
	for {
		f.mu.Lock()
		ch := f.thawed
		f.mu.Unlock()
		if ch == nil {
			select {
			case <-f.done:
				return false
			default:
				return true
			}
		}
		select {
		case <-ch:
		case <-f.done:
			return false
		}
	}
}

func (f *Freezer) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.done:
		_ = c.Close()
		return false
	default:
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *Freezer) accept() {
	defer f.wg.Done()
	for f.wait() {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.wait() { // frozen between Accept's return and here: the process did not run
			_ = c.Close()
			return
		}
		b, err := net.Dial("tcp", f.backend)
		if err != nil {
			_ = c.Close()
			continue
		}
		if !f.track(c) || !f.track(b) {
			_ = c.Close()
			_ = b.Close()
			return
		}
		f.wg.Add(2)
		go f.pipe(c, b)
		go f.pipe(b, c)
	}
}

// pipe copies from src to dst, holding every byte while frozen.
func (f *Freezer) pipe(dst, src net.Conn) {
	defer f.wg.Done()
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for f.wait() {
		n, err := src.Read(buf)
		if n > 0 {
			if !f.wait() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (f *Freezer) close() {
	f.mu.Lock()
	close(f.done)
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	_ = f.ln.Close()
	f.wg.Wait()
}
