// Package pgnotify is a change feed on PostgreSQL LISTEN/NOTIFY: the replicas of a service tell
// each other which record changed ("order 3f2a... changed"), so that a watcher on one replica
// wakes at once when another replica commits a change.
//
// A Feed holds two dedicated connections: one LISTENs on the channel (and reconnects with
// backoff when it drops, then tells every subscriber that changes may have been missed), the
// other sends the NOTIFYs queued by Publish, batched, from its own goroutine, so that Publish
// never blocks a commit. A notification is a hint that carries only a key: the receiver re-reads
// the record, so a duplicate, merged or late notification loses nothing, and a lost one is
// caught by the receiver's own safety net (a poll).
package pgnotify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultChannel is the channel of the order service's changes.
const DefaultChannel = "shop_order_changed"

// All is the payload that means "anything may have changed": its receivers wake every watcher.
// An empty payload (a bare `NOTIFY shop_order_changed`) means the same.
const All = "*"

// MaxKey is the longest key Publish sends as is (PostgreSQL refuses payloads of 8000 bytes or
// more); a longer key is published as All.
const MaxKey = 7999

// Defaults of Options.
const (
	DefaultMinBackoff     = 100 * time.Millisecond
	DefaultMaxBackoff     = 10 * time.Second
	DefaultPingInterval   = 30 * time.Second
	DefaultConnectTimeout = 5 * time.Second
	DefaultMaxPending     = 10000
)

// Options configures Open. The zero value means the defaults.
type Options struct {
	// Channel is the PostgreSQL channel to LISTEN and NOTIFY on (any name: it is quoted).
	// Default: DefaultChannel ("shop_order_changed").
	Channel string
	// Logger receives the connection losses and reconnections (WARN). Default: slog.Default().
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the wait between attempts to reconnect: it doubles from
	// MinBackoff up to MaxBackoff, with jitter. Defaults: 100ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// PingInterval is how long the listener waits without a notification before it pings the
	// server, so that a connection that died silently is noticed. Default: 30s.
	PingInterval time.Duration
	// ConnectTimeout bounds one connection attempt and one ping, unless the URL sets
	// connect_timeout. Default: 5s.
	ConnectTimeout time.Duration
	// MaxPending is how many distinct keys may wait to be published (while the server is
	// unreachable) before they collapse into one All. Default: 10000.
	MaxPending int
	// Registerer, when set, receives the feed's metrics (pgnotify_*_total, labelled with the
	// channel). Default: none.
	Registerer prometheus.Registerer
}

// Stats are the feed's counters since Open.
type Stats struct {
	// Received counts the notifications delivered to the subscribers (own ones are not).
	Received uint64
	// Reconnects counts the listener's reconnections after its connection was lost.
	Reconnects uint64
	// Published counts the payloads sent (one per key, All included).
	Published uint64
	// PublishFailures counts the failed sends (the keys are kept and sent again).
	PublishFailures uint64
	// ListenerPID and PublisherPID are the server processes of the two connections (the pid
	// column of pg_stat_activity); 0 while not connected.
	ListenerPID, PublisherPID uint32
}

// Feed is a change feed on one PostgreSQL channel. Its methods are safe for concurrent use.
type Feed struct {
	channel string
	cfg     *pgx.ConnConfig
	log     *slog.Logger
	opts    Options

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	subsMu sync.Mutex
	subs   map[*subscriber]struct{}

	pendMu  sync.Mutex
	pending map[string]struct{}
	pendAll bool
	kick    chan struct{}

	pubPID    atomic.Uint32 // backend of the publishing connection: its notifications are our own
	listenPID atomic.Uint32

	received, reconnects, published, publishFailures atomic.Uint64
	unregister                                       func()
	closeOnce                                        sync.Once
}

type subscriber struct {
	changed func(key string)
	missed  func()
}

// Open connects to the PostgreSQL server at url (postgres://... or a key=value DSN), LISTENs on
// the channel, and returns the running feed: a notification sent after Open returns reaches the
// subscribers. The publishing connection is opened at the first Publish. Close stops it.
func Open(ctx context.Context, url string, opts Options) (*Feed, error) {
	if opts.Channel == "" {
		opts.Channel = DefaultChannel
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = DefaultMinBackoff
	}
	if opts.MaxBackoff <= 0 {
		opts.MaxBackoff = DefaultMaxBackoff
	}
	opts.MaxBackoff = max(opts.MaxBackoff, opts.MinBackoff)
	if opts.PingInterval <= 0 {
		opts.PingInterval = DefaultPingInterval
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("pgnotify: parsing the database URL: %w", err)
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = opts.ConnectTimeout
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "shopgate-pgnotify"
	}
	f := &Feed{
		channel: opts.Channel, cfg: cfg, log: opts.Logger, opts: opts,
		subs: make(map[*subscriber]struct{}), pending: make(map[string]struct{}), kick: make(chan struct{}, 1),
		unregister: func() {},
	}
	conn, err := f.connectListener(ctx)
	if err != nil {
		return nil, err
	}
	if opts.Registerer != nil {
		c := newCollector(f)
		if err := opts.Registerer.Register(c); err != nil {
			_ = conn.Close(context.Background())
			return nil, fmt.Errorf("pgnotify: registering metrics: %w", err)
		}
		f.unregister = func() { opts.Registerer.Unregister(c) }
	}
	f.ctx, f.cancel = context.WithCancel(context.Background())
	f.wg.Add(2)
	go f.listen(conn)
	go f.send()
	return f, nil
}

// Channel returns the channel the feed listens and publishes on.
func (f *Feed) Channel() string { return f.channel }

// Subscribe calls changed with the key of each notification another feed (or any session)
// sends on the channel, and missed when notifications may have been lost (after the listener
// reconnected) or one says All. Both run on the listener's goroutine and must not block; the
// feed's own notifications are not delivered (its publisher knows of them). It returns the
// function that ends the calls (one already under way may still finish after it returns).
func (f *Feed) Subscribe(changed func(key string), missed func()) (cancel func()) {
	s := &subscriber{changed: changed, missed: missed}
	f.subsMu.Lock()
	f.subs[s] = struct{}{}
	f.subsMu.Unlock()
	return func() {
		f.subsMu.Lock()
		delete(f.subs, s)
		f.subsMu.Unlock()
	}
}

// Publish queues a notification that key changed and returns at once; call it after the change
// committed. The sender goroutine sends the queued keys in one statement, and keeps them while
// the server is unreachable (beyond MaxPending distinct keys they become one All). An empty
// key, or one longer than MaxKey, is published as All. After Close it does nothing.
func (f *Feed) Publish(key string) {
	if f.ctx.Err() != nil {
		return
	}
	f.pendMu.Lock()
	switch {
	case key == "" || key == All || len(key) > MaxKey:
		f.pendAll = true
	case !f.pendAll:
		f.pending[key] = struct{}{}
		if len(f.pending) > f.opts.MaxPending {
			f.pendAll = true
		}
	}
	if f.pendAll {
		clear(f.pending)
	}
	f.pendMu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// Stats returns the feed's counters.
func (f *Feed) Stats() Stats {
	return Stats{
		Received: f.received.Load(), Reconnects: f.reconnects.Load(),
		Published: f.published.Load(), PublishFailures: f.publishFailures.Load(),
		ListenerPID: f.listenPID.Load(), PublisherPID: f.pubPID.Load(),
	}
}

// Close stops the listener and the sender (which first finishes a send under way and tries to
// send what is queued, each for at most ConnectTimeout) and closes their connections. Later
// calls do nothing.
func (f *Feed) Close() error {
	f.closeOnce.Do(func() {
		f.cancel()
		f.wg.Wait()
		f.unregister()
	})
	return nil
}

// connectListener opens the listening connection and LISTENs on the channel.
func (f *Feed) connectListener(ctx context.Context) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, f.cfg)
	if err != nil {
		return nil, fmt.Errorf("pgnotify: connecting the listener: %w", err)
	}
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{f.channel}.Sanitize()); err != nil {
		_ = conn.Close(context.Background())
		return nil, fmt.Errorf("pgnotify: LISTEN %q: %w", f.channel, err)
	}
	f.listenPID.Store(conn.PgConn().PID())
	return conn, nil
}

// listen delivers the notifications of conn until Close, reconnecting when conn is lost.
func (f *Feed) listen(conn *pgx.Conn) {
	defer f.wg.Done()
	for {
		err := f.receive(conn)
		closeConn(conn)
		f.listenPID.Store(0)
		if f.ctx.Err() != nil {
			return
		}
		f.log.Warn("pgnotify: listener connection lost; reconnecting", "channel", f.channel, "err", err)
		conn = f.reconnect()
		if conn == nil {
			return
		}
		f.reconnects.Add(1)
		f.log.Warn("pgnotify: listener reconnected; waking every watcher", "channel", f.channel, "pid", conn.PgConn().PID())
		f.missed()
	}
}

// receive delivers the notifications of conn until it fails or the feed closes, pinging the
// server after PingInterval without one.
func (f *Feed) receive(conn *pgx.Conn) error {
	own := func(pid uint32) bool { p := f.pubPID.Load(); return p != 0 && p == pid }
	for {
		ctx, cancel := context.WithTimeout(f.ctx, f.opts.PingInterval)
		n, err := conn.WaitForNotification(ctx)
		cancel()
		if n != nil && !own(n.PID) { // even with an error: pgx may return one it had buffered
			f.deliver(n.Payload)
		}
		switch {
		case err == nil: // wait for the next one
		case f.ctx.Err() != nil:
			return f.ctx.Err()
		case errors.Is(err, context.DeadlineExceeded) && !conn.IsClosed():
			pctx, pcancel := context.WithTimeout(f.ctx, f.opts.ConnectTimeout)
			err = conn.Ping(pctx)
			pcancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		default:
			return err
		}
	}
}

// reconnect connects and LISTENs again, waiting with backoff between attempts; nil once the feed
// is closed.
func (f *Feed) reconnect() *pgx.Conn {
	for attempt := 0; ; attempt++ {
		if !f.sleep(attempt) {
			return nil
		}
		ctx, cancel := context.WithTimeout(f.ctx, f.opts.ConnectTimeout)
		conn, err := f.connectListener(ctx)
		cancel()
		if err == nil {
			return conn
		}
		if f.ctx.Err() != nil {
			return nil
		}
		f.log.Warn("pgnotify: reconnecting the listener failed", "channel", f.channel, "attempt", attempt+1, "err", err)
	}
}

// sleep waits the backoff of the attempt-th retry (0: MinBackoff on average); false when the
// feed closed meanwhile.
func (f *Feed) sleep(attempt int) bool {
	d := f.opts.MinBackoff << min(attempt, 30)
	if d <= 0 || d > f.opts.MaxBackoff {
		d = f.opts.MaxBackoff
	}
	d = d/2 + rand.N(d/2+1) // jitter: replicas that lost the server together do not return together
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-f.ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// deliver passes a received payload to the subscribers.
func (f *Feed) deliver(payload string) {
	f.received.Add(1)
	if payload == "" || payload == All {
		f.missed()
	} else {
		f.changed(payload)
	}
}

func (f *Feed) snapshot() []*subscriber {
	f.subsMu.Lock()
	defer f.subsMu.Unlock()
	out := make([]*subscriber, 0, len(f.subs))
	for s := range f.subs {
		out = append(out, s)
	}
	return out
}

func (f *Feed) changed(key string) {
	for _, s := range f.snapshot() {
		if s.changed != nil {
			s.changed(key)
		}
	}
}

func (f *Feed) missed() {
	for _, s := range f.snapshot() {
		if s.missed != nil {
			s.missed()
		}
	}
}

// take empties the queue: the keys to send (All alone when set).
func (f *Feed) take() []string {
	f.pendMu.Lock()
	defer f.pendMu.Unlock()
	if f.pendAll {
		f.pendAll = false
		return []string{All}
	}
	if len(f.pending) == 0 {
		return nil
	}
	out := make([]string, 0, len(f.pending))
	for k := range f.pending {
		out = append(out, k)
	}
	clear(f.pending)
	return out
}

// requeue puts back keys whose send failed.
func (f *Feed) requeue(keys []string) {
	f.pendMu.Lock()
	defer f.pendMu.Unlock()
	for _, k := range keys {
		if k == All || f.pendAll {
			f.pendAll = true
			clear(f.pending)
			return
		}
		f.pending[k] = struct{}{}
	}
	if len(f.pending) > f.opts.MaxPending {
		f.pendAll = true
		clear(f.pending)
	}
}

// notifySQL sends one notification per key of $2 on channel $1, in one round trip.
const notifySQL = `SELECT pg_notify($1, k) FROM unnest($2::text[]) AS k`

// send sends the queued keys until Close, on a connection of its own, reconnecting with backoff
// after a failure.
func (f *Feed) send() {
	defer f.wg.Done()
	var conn *pgx.Conn
	defer func() { closeConn(conn); f.pubPID.Store(0) }()
	failures := 0
	flush := func(ctx context.Context) error {
		for {
			keys := f.take()
			if len(keys) == 0 {
				return nil
			}
			err := func() error {
				if conn == nil {
					c, err := pgx.ConnectConfig(ctx, f.cfg)
					if err != nil {
						return fmt.Errorf("connecting the publisher: %w", err)
					}
					conn = c
					f.pubPID.Store(c.PgConn().PID())
				}
				_, err := conn.Exec(ctx, notifySQL, f.channel, keys)
				return err
			}()
			if err != nil {
				f.requeue(keys)
				f.publishFailures.Add(1)
				closeConn(conn)
				conn = nil
				f.pubPID.Store(0)
				return err
			}
			f.published.Add(uint64(len(keys)))
		}
	}
	for {
		select {
		case <-f.ctx.Done():
			ctx, cancel := context.WithTimeout(context.Background(), f.opts.ConnectTimeout)
			if err := flush(ctx); err != nil {
				f.log.Warn("pgnotify: notifications not sent at close", "channel", f.channel, "err", err)
			}
			cancel()
			return
		case <-f.kick:
		}
		// Not f.ctx: Close lets a send under way finish rather than cut it off and send its
		// keys again.
		ctx, cancel := context.WithTimeout(context.Background(), f.opts.ConnectTimeout)
		err := flush(ctx)
		cancel()
		if err == nil {
			failures = 0
			continue
		}
		if f.ctx.Err() != nil {
			continue // the close flush tries once more
		}
		f.log.Warn("pgnotify: publishing failed; retrying", "channel", f.channel, "attempt", failures+1, "err", err)
		if !f.sleep(failures) {
			continue
		}
		failures++
		select { // retry what was requeued
		case f.kick <- struct{}{}:
		default:
		}
	}
}

func closeConn(conn *pgx.Conn) {
	if conn == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = conn.Close(ctx)
}

// collector exports Stats as pgnotify_*_total counters, labelled with the channel.
type collector struct {
	f                                                *Feed
	received, reconnects, published, publishFailures *prometheus.Desc
}

func newCollector(f *Feed) *collector {
	l := prometheus.Labels{"channel": f.channel}
	return &collector{f: f,
		received:        prometheus.NewDesc("pgnotify_received_total", "Notifications received from other sessions on the channel.", nil, l),
		reconnects:      prometheus.NewDesc("pgnotify_reconnects_total", "Reconnections of the listener after its connection was lost.", nil, l),
		published:       prometheus.NewDesc("pgnotify_published_total", "Notifications sent on the channel.", nil, l),
		publishFailures: prometheus.NewDesc("pgnotify_publish_failures_total", "Failed sends of notifications (retried).", nil, l),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.received
	ch <- c.reconnects
	ch <- c.published
	ch <- c.publishFailures
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	st := c.f.Stats()
	ch <- prometheus.MustNewConstMetric(c.received, prometheus.CounterValue, float64(st.Received))
	ch <- prometheus.MustNewConstMetric(c.reconnects, prometheus.CounterValue, float64(st.Reconnects))
	ch <- prometheus.MustNewConstMetric(c.published, prometheus.CounterValue, float64(st.Published))
	ch <- prometheus.MustNewConstMetric(c.publishFailures, prometheus.CounterValue, float64(st.PublishFailures))
}
