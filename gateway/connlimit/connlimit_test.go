package connlimit

import (
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeConn records its read deadline and whether it was closed.
type fakeConn struct {
	net.Conn // nil: only the methods below are called
	mu       sync.Mutex
	deadline time.Time
	closed   bool
}

func (c *fakeConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.deadline = t
	return nil
}

func (c *fakeConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	return nil
}

func (c *fakeConn) state() (time.Time, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.deadline, c.closed
}

// fakeListener hands out new fakeConns, or only those of next (then net.ErrClosed) once set.
type fakeListener struct {
	net.Listener
	next []*fakeConn
	only bool
}

func (l *fakeListener) Accept() (net.Conn, error) {
	if !l.only {
		return &fakeConn{}, nil
	}
	if len(l.next) == 0 {
		return nil, net.ErrClosed
	}
	c := l.next[0]
	l.next = l.next[1:]
	return c, nil
}

func TestNewValidates(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want []string // in the error; none: valid
	}{
		{"zero: the defaults", Config{}, nil},
		{"all set", Config{Max: 5, PressurePercent: 100, PressureIdleTimeout: time.Second}, nil},
		{"all wrong at once", Config{Max: -1, PressurePercent: 101, PressureIdleTimeout: -time.Second},
			[]string{"connection limit: ", "max -1", "pressure percent 101", "pressure idle timeout -1s"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg, nil)
			if (err != nil) != (tt.want != nil) {
				t.Fatalf("New: %v, want error %v", err, tt.want != nil)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestIdleDeadline: the server's idle deadline is cut to PressureIdleTimeout after the
// connection went idle only while it is idle and under pressure; the server's own deadline wins
// when it is sooner.
func TestIdleDeadline(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	const limit = 5 * time.Second
	for _, tt := range []struct {
		name     string
		open     int // of Max 10, pressure from 8
		idle     bool
		deadline time.Time // the server asks for
		want     time.Time
	}{
		{"busy under pressure", 9, false, t0.Add(time.Minute), t0.Add(time.Minute)},
		{"idle below pressure", 7, true, t0.Add(2 * time.Minute), t0.Add(2 * time.Minute)},
		{"idle under pressure", 8, true, t0.Add(2 * time.Minute), t0.Add(limit)},
		{"idle under pressure, no deadline", 8, true, time.Time{}, t0.Add(limit)},
		{"idle under pressure, sooner deadline", 8, true, t0.Add(time.Second), t0.Add(time.Second)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			l, err := New(Config{Max: 10, PressureIdleTimeout: limit}, nil)
			if err != nil {
				t.Fatal(err)
			}
			l.now = func() time.Time { return t0 }
			ln := l.Listener(&fakeListener{})
			var c net.Conn
			for range tt.open {
				if c, err = ln.Accept(); err != nil {
					t.Fatal(err)
				}
			}
			if tt.idle {
				l.ConnState(c, http.StateIdle)
			}
			_ = c.SetReadDeadline(tt.deadline)
			if got, _ := c.(*conn).Conn.(*fakeConn).state(); !got.Equal(tt.want) {
				t.Fatalf("read deadline %v, want %v", got, tt.want)
			}
		})
	}
}

// TestCapAndSweep: the connection over Max is closed at once and counted; reaching pressure
// gives the connections already idle PressureIdleTimeout from when each went idle (or the
// server's sooner deadline), and leaves busy ones alone; a closed connection is uncounted.
func TestCapAndSweep(t *testing.T) {
	t0 := time.Date(2026, 12, 4, 12, 0, 0, 0, time.UTC)
	now := t0
	l, err := New(Config{Max: 5, PressurePercent: 80, PressureIdleTimeout: 5 * time.Second}, nil)
	if err != nil {
		t.Fatal(err)
	}
	l.now = func() time.Time { return now }
	fl := &fakeListener{}
	ln := l.Listener(fl)
	accept := func() net.Conn {
		t.Helper()
		c, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	idleEarly, idleSoon, busy := accept(), accept(), accept()
	l.ConnState(idleEarly, http.StateIdle) // idle at t0
	_ = idleEarly.SetReadDeadline(t0.Add(2 * time.Minute))
	now = t0.Add(3 * time.Second)
	l.ConnState(idleSoon, http.StateIdle) // idle at t0+3s, with a deadline sooner than the cut
	_ = idleSoon.SetReadDeadline(now.Add(time.Second))
	_ = busy.SetReadDeadline(now.Add(time.Minute))
	now = t0.Add(4 * time.Second)
	accept() // 4 of 5: pressure
	for _, tt := range []struct {
		name string
		c    net.Conn
		want time.Time
	}{
		{"idle since t0", idleEarly, t0.Add(5 * time.Second)},
		{"idle since t0+3s, deadline t0+4s", idleSoon, t0.Add(4 * time.Second)},
		{"busy", busy, t0.Add(3*time.Second + time.Minute)},
	} {
		if got, _ := tt.c.(*conn).Conn.(*fakeConn).state(); !got.Equal(tt.want) {
			t.Errorf("%s: read deadline %v, want %v", tt.name, got, tt.want)
		}
	}
	accept() // 5 of 5: the cap
	over := &fakeConn{}
	fl.next, fl.only = []*fakeConn{over}, true
	if c, err := ln.Accept(); c != nil || err != net.ErrClosed {
		t.Fatalf("Accept over the cap: %v, %v; want it to skip the connection and end", c, err)
	}
	if _, closed := over.state(); !closed || l.Open() != 5 {
		t.Fatalf("over the cap: closed %v, open %d; want closed and 5 open", closed, l.Open())
	}
	if got := testutil.ToFloat64(l.refused); got != 1 {
		t.Fatalf("refused %v, want 1", got)
	}
	_ = idleEarly.Close()
	_ = idleEarly.Close() // twice: counted once
	if l.Open() != 4 || l.Idle() != 1 {
		t.Fatalf("after a close: open %d, idle %d; want 4 and 1", l.Open(), l.Idle())
	}
}
