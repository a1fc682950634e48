// Package h2frames is a test helper: it reads, as HTTP/2 frames, what one side of a connection
// writes (a gRPC client or server), and counts the frames flow control is made of: the PINGs
// that side starts (grpc-go's bandwidth-delay estimation sends them), the stream window its
// first SETTINGS grants, and the WINDOW_UPDATE increments it grants on the connection.
package h2frames

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// Recorder counts the frames written on the connections it wraps. Its methods are safe for
// concurrent use.
type Recorder struct {
	mu         sync.Mutex
	pings      int
	streamWin  uint32
	connWinInc uint32
	readers    sync.WaitGroup
}

// Counts are what a Recorder saw.
type Counts struct {
	// Pings started (acks not counted).
	Pings int
	// StreamWindow is SETTINGS_INITIAL_WINDOW_SIZE of the first SETTINGS (65535 when absent).
	StreamWindow uint32
	// ConnWindow is the connection window granted: 65535 plus the WINDOW_UPDATE increments on
	// stream 0.
	ConnWindow uint32
}

// Wrap returns c with its writes copied to the recorder's frame reader; client is true when c
// is the client's side (its writes start with the connection preface).
func (f *Recorder) Wrap(c net.Conn, client bool) net.Conn {
	pr, pw := io.Pipe()
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		f.read(pr, client)
		_, _ = io.Copy(io.Discard, pr) // never block the connection's writes
	}()
	return &teeConn{Conn: c, w: pw}
}

// Counts waits (up to 10s) for every wrapped connection to be closed and returns the counts;
// ok is false when one is still open.
func (f *Recorder) Counts() (counts Counts, ok bool) {
	done := make(chan struct{})
	go func() { f.readers.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		return Counts{}, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return Counts{Pings: f.pings, StreamWindow: f.streamWin, ConnWindow: 65535 + f.connWinInc}, true
}

func (f *Recorder) read(r io.Reader, client bool) {
	if client {
		if _, err := io.ReadFull(r, make([]byte, len(http2.ClientPreface))); err != nil {
			return
		}
	}
	fr := http2.NewFramer(nil, r)
	sawSettings := false
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			return
		}
		f.mu.Lock()
		switch fr := frame.(type) {
		case *http2.PingFrame:
			if !fr.IsAck() {
				f.pings++
			}
		case *http2.SettingsFrame:
			if !fr.IsAck() && !sawSettings {
				sawSettings = true
				f.streamWin = 65535
				if v, ok := fr.Value(http2.SettingInitialWindowSize); ok {
					f.streamWin = v
				}
			}
		case *http2.WindowUpdateFrame:
			if fr.StreamID == 0 {
				f.connWinInc += fr.Increment
			}
		}
		f.mu.Unlock()
	}
}

// teeConn copies what is written on the connection into w, and closes w with the connection.
type teeConn struct {
	net.Conn
	w *io.PipeWriter
}

func (c *teeConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	_, _ = c.w.Write(b[:n])
	return n, err
}

func (c *teeConn) Close() error {
	_ = c.w.Close()
	return c.Conn.Close()
}

// Want is what a test expects of a Recorder's counts.
type Want struct {
	StreamWindow uint32
	ConnWindow   uint32         // 0: not checked
	Pings        func(int) bool // whether the number of PINGs started is right
}

// Check waits for the wrapped connections to close (Counts) and reports every count that
// differs from want; side names the writer in the messages ("client", "server").
func (f *Recorder) Check(t testing.TB, side string, want Want) {
	t.Helper()
	got, ok := f.Counts()
	if !ok {
		t.Fatalf("the %s's connections were not closed", side)
	}
	if got.StreamWindow != want.StreamWindow {
		t.Errorf("%s granted a stream window of %d, want %d", side, got.StreamWindow, want.StreamWindow)
	}
	if want.ConnWindow != 0 && got.ConnWindow != want.ConnWindow {
		t.Errorf("%s granted a connection window of %d, want %d", side, got.ConnWindow, want.ConnWindow)
	}
	if !want.Pings(got.Pings) {
		t.Errorf("%s started %d PINGs", side, got.Pings)
	}
}
