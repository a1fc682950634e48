package connlimit

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	gwmetrics "github.com/acme/shopgate/gateway/metrics"
)

// Defaults of Config.
const (
	// DefaultMax bounds the open client connections. Each costs a file descriptor and a
	// goroutine with its buffers (about 10 KB idle): the process's descriptor limit (ulimit -n)
	// must be above it, with room for the upstream connections.
	DefaultMax = 10_000
	// DefaultPressurePercent is the share of Max from which idle connections are closed sooner.
	DefaultPressurePercent = 80
	// DefaultPressureIdleTimeout closes an idle keep-alive connection under pressure.
	DefaultPressureIdleTimeout = 5 * time.Second
)

// Config bounds the connections. The zero value means the defaults.
type Config struct {
	// Max is the most client connections open at once; one more is accepted and closed at
	// once. Default: DefaultMax (10000).
	Max int
	// PressurePercent is the share of Max, in percent, from which idle keep-alive connections
	// are closed after PressureIdleTimeout. Default: DefaultPressurePercent (80).
	PressurePercent int
	// PressureIdleTimeout is how long a keep-alive connection may stay idle under pressure.
	// Default: DefaultPressureIdleTimeout (5s).
	PressureIdleTimeout time.Duration
}

// Limiter counts the connections of the listeners it wraps (one cap across all of them) and
// tracks which are idle. Install ConnState as the http.Server's ConnState hook.
type Limiter struct {
	max        int64
	pressureAt int64
	idleLimit  time.Duration
	sweepEvery time.Duration
	now        func() time.Time

	open      atomic.Int64
	refused   prometheus.Counter
	openGauge prometheus.Gauge // follows open; shared with any other Limiter on the registry

	mu        sync.Mutex
	idle      map[*conn]struct{} // the connections between requests
	lastSweep time.Time
}

// New validates cfg (every invalid value is reported at once) and registers the metrics on reg
// (none when nil). Its errors start with "connection limit: ".
func New(cfg Config, reg prometheus.Registerer) (*Limiter, error) {
	var errs []error
	if cfg.Max == 0 {
		cfg.Max = DefaultMax
	}
	if cfg.Max < 0 {
		errs = append(errs, fmt.Errorf("max %d is negative", cfg.Max))
	}
	if cfg.PressurePercent == 0 {
		cfg.PressurePercent = DefaultPressurePercent
	}
	if cfg.PressurePercent < 0 || cfg.PressurePercent > 100 {
		errs = append(errs, fmt.Errorf("pressure percent %d is not within 1..100", cfg.PressurePercent))
	}
	if cfg.PressureIdleTimeout == 0 {
		cfg.PressureIdleTimeout = DefaultPressureIdleTimeout
	}
	if cfg.PressureIdleTimeout < 0 {
		errs = append(errs, fmt.Errorf("pressure idle timeout %v is negative", cfg.PressureIdleTimeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("connection limit: %w", err)
	}
	l := &Limiter{
		max:        int64(cfg.Max),
		pressureAt: max(1, int64(cfg.Max)*int64(cfg.PressurePercent)/100),
		idleLimit:  cfg.PressureIdleTimeout,
		// Under steady pressure, connections that went idle before it began are looked at
		// again at most this often: a sweep walks every idle connection.
		sweepEvery: max(cfg.PressureIdleTimeout/5, time.Millisecond),
		now:        time.Now,
		idle:       make(map[*conn]struct{}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gateway_connections_refused_total",
			Help: "Client connections closed at once because server.max_connections were open.",
		}),
		openGauge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gateway_connections_open",
			Help: "Client connections open (server.max_connections bounds them).",
		}),
	}
	if reg == nil {
		return l, nil
	}
	var err error
	if l.refused, err = gwmetrics.RegisterOrReuse(reg, l.refused); err != nil {
		return nil, fmt.Errorf("connection limit: %w", err)
	}
	if l.openGauge, err = gwmetrics.RegisterOrReuse(reg, l.openGauge); err != nil {
		return nil, fmt.Errorf("connection limit: %w", err)
	}
	return l, nil
}

// Open returns the number of open connections.
func (l *Limiter) Open() int { return int(l.open.Load()) }

// Idle returns the number of connections idle between requests.
func (l *Limiter) Idle() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.idle)
}

// Listener wraps ln: each connection it accepts counts until closed, and one beyond the cap is
// closed at once. The connections it returns unwrap with NetConn.
func (l *Limiter) Listener(ln net.Listener) net.Listener { return &listener{Listener: ln, l: l} }

type listener struct {
	net.Listener
	l *Limiter
}

// Accept returns the next connection within the cap, closing those beyond it.
func (ln *listener) Accept() (net.Conn, error) {
	l := ln.l
	for {
		c, err := ln.Listener.Accept()
		if err != nil {
			return nil, err
		}
		n := l.open.Add(1)
		if n > l.max {
			l.open.Add(-1)
			_ = c.Close()
			l.refused.Inc()
			continue
		}
		l.openGauge.Inc()
		if n >= l.pressureAt {
			l.sweep()
		}
		return &conn{Conn: c, l: l}, nil
	}
}

// underPressure reports whether idle connections get the shorter idle timeout.
func (l *Limiter) underPressure() bool { return l.open.Load() >= l.pressureAt }

// sweep gives every idle connection the pressure deadline, counted from when it went idle (a
// deadline already past closes it at once), at most once per sweepEvery.
func (l *Limiter) sweep() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.lastSweep) < l.sweepEvery {
		return
	}
	l.lastSweep = now
	for c := range l.idle {
		_ = c.Conn.SetReadDeadline(c.pressureDeadline(c.serverDeadline()))
	}
}

// ConnState is the http.Server's ConnState hook: it tracks which connections are idle between
// requests. Connections not from Listener are ignored.
func (l *Limiter) ConnState(nc net.Conn, state http.ConnState) {
	c, ok := nc.(*conn)
	if !ok {
		return
	}
	switch state {
	case http.StateIdle:
		l.mu.Lock()
		c.idleSince.Store(l.now().UnixNano())
		c.idle.Store(true)
		l.idle[c] = struct{}{}
		l.mu.Unlock()
	case http.StateActive, http.StateHijacked, http.StateClosed:
		if c.idle.Load() {
			c.busy()
		}
	}
}

// conn is an accepted connection, counted until closed. Its serving goroutine alone marks it
// idle or busy and sets its deadlines; the sweep (under l.mu, on the idle ones only) is the one
// other writer of its read deadline.
type conn struct {
	net.Conn
	l *Limiter

	idle      atomic.Bool  // between ConnState(StateIdle) and the next request's first byte
	idleSince atomic.Int64 // Unix nanoseconds, set when it went idle
	deadline  atomic.Int64 // the read deadline the server last asked for, Unix nanoseconds; 0: none
	closeOnce sync.Once
}

// NetConn returns the wrapped connection.
func (c *conn) NetConn() net.Conn { return c.Conn }

// Read marks the connection busy once the next request's first bytes arrive: from then on, the
// server's own deadlines for reading the request apply.
func (c *conn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.idle.Load() {
		c.busy()
	}
	return n, err
}

// SetReadDeadline shortens the deadline of an idle connection under pressure to
// PressureIdleTimeout after it went idle (the server sets its idle deadline right after
// ConnState reports the connection idle).
func (c *conn) SetReadDeadline(t time.Time) error {
	var ns int64
	if !t.IsZero() {
		ns = t.UnixNano()
	}
	c.deadline.Store(ns)
	if c.idle.Load() && c.l.underPressure() {
		t = c.pressureDeadline(t)
	}
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets the write deadline, and the read deadline as SetReadDeadline does.
func (c *conn) SetDeadline(t time.Time) error {
	return errors.Join(c.Conn.SetWriteDeadline(t), c.SetReadDeadline(t))
}

// serverDeadline is the read deadline the server last asked for (zero: none).
func (c *conn) serverDeadline() time.Time {
	if ns := c.deadline.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// pressureDeadline is t or, when sooner, PressureIdleTimeout after the connection went idle.
func (c *conn) pressureDeadline(t time.Time) time.Time {
	d := time.Unix(0, c.idleSince.Load()).Add(c.l.idleLimit)
	if t.IsZero() || d.Before(t) {
		return d
	}
	return t
}

// busy takes the connection out of the idle set.
func (c *conn) busy() {
	c.l.mu.Lock()
	c.idle.Store(false)
	delete(c.l.idle, c)
	c.l.mu.Unlock()
}

// Close closes the connection and stops counting it. Safe to call twice.
func (c *conn) Close() error {
	err := c.Conn.Close()
	c.closeOnce.Do(func() {
		c.busy()
		c.l.open.Add(-1)
		c.l.openGauge.Dec()
	})
	return err
}

// RefusedCounter returns the counter of connections closed over the cap (for tests).
func (l *Limiter) RefusedCounter() prometheus.Counter { return l.refused }
