package pgnotify_test

import (
	"context"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/services/pgnotify"
	"github.com/acme/shopgate/services/pgnotify/pgnotifytest"
	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// wait bounds every wait for a notification: they arrive in milliseconds.
const wait = 5 * time.Second

// recorder is a subscriber: the keys it was told of, and "missed" for each missed call.
type recorder chan string

func subscribe(f *pgnotify.Feed) (recorder, func()) {
	r := make(recorder, 100)
	cancel := f.Subscribe(func(key string) { r <- key }, func() { r <- "missed" })
	return r, cancel
}

// next returns the next event, failing t after wait.
func (r recorder) next(t *testing.T) string {
	t.Helper()
	select {
	case e := <-r:
		return e
	case <-time.After(wait):
		t.Fatal("no notification within", wait)
		return ""
	}
}

// nextN returns the next n events, sorted.
func (r recorder) nextN(t *testing.T, n int) []string {
	t.Helper()
	out := make([]string, n)
	for i := range out {
		out[i] = r.next(t)
	}
	slices.Sort(out)
	return out
}

// open opens a feed on url with quick backoff, closed at the end of the test.
func open(t *testing.T, url string, opts pgnotify.Options) *pgnotify.Feed {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff, opts.MaxBackoff = 5*time.Millisecond, 50*time.Millisecond
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	f, err := pgnotify.Open(ctx, url, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestPublishReachesOtherFeeds(t *testing.T) {
	url := pgnotifytest.URL(t)
	ch := pgnotifytest.Channel(t)
	a := open(t, url, pgnotify.Options{Channel: ch})
	b := open(t, url, pgnotify.Options{Channel: ch})
	other := open(t, url, pgnotify.Options{Channel: pgnotifytest.Channel(t)})
	ra, _ := subscribe(a)
	rb, _ := subscribe(b)
	ro, _ := subscribe(other)

	b.Publish("k1")
	b.Publish("k2")
	if got, want := ra.nextN(t, 2), []string{"k1", "k2"}; !slices.Equal(got, want) {
		t.Fatalf("a got %v, want %v", got, want)
	}
	a.Publish("from-a")
	if e := rb.next(t); e != "from-a" {
		t.Fatalf("b got %q, want from-a", e)
	}
	// A last notification from a, then check that nobody else heard more than they should:
	// b never hears its own keys, the other channel hears nothing.
	a.Publish("end")
	if e := rb.next(t); e != "end" {
		t.Fatalf("b got %q, want end", e)
	}
	if len(ra) != 0 || len(rb) != 0 || len(ro) != 0 {
		t.Fatalf("unexpected notifications: a %d, b %d, other channel %d", len(ra), len(rb), len(ro))
	}
	if st := b.Stats(); st.Published < 2 || st.Received != 2 || st.ListenerPID == 0 || st.PublisherPID == 0 {
		t.Fatalf("b stats %+v", st)
	}
	if a.Channel() != ch {
		t.Fatalf("channel %q, want %q", a.Channel(), ch)
	}
}

// TestPayloads: what a session other than a feed sends, and what Publish makes of odd keys.
func TestPayloads(t *testing.T) {
	url := pgnotifytest.URL(t)
	ch := pgnotifytest.Channel(t)
	f := open(t, url, pgnotify.Options{Channel: ch})
	pub := open(t, url, pgnotify.Options{Channel: ch})
	r, _ := subscribe(f)
	quoted := `"` + ch + `"`
	tests := []struct {
		name string
		send func()
		want string
	}{
		{"unknown key from psql", func() { pgnotifytest.Exec(t, url, `NOTIFY `+quoted+`, 'no-such-order'`) }, "no-such-order"},
		{"pg_notify", func() { pgnotifytest.Exec(t, url, `SELECT pg_notify($1, $2)`, ch, "0123456789abcdef0123456789abcdef") }, "0123456789abcdef0123456789abcdef"},
		{"bare NOTIFY wakes everything", func() { pgnotifytest.Exec(t, url, `NOTIFY `+quoted) }, "missed"},
		{"All wakes everything", func() { pgnotifytest.Exec(t, url, `NOTIFY `+quoted+`, '*'`) }, "missed"},
		{"published empty key", func() { pub.Publish("") }, "missed"},
		{"published key too long for a payload", func() { pub.Publish(strings.Repeat("x", pgnotify.MaxKey+1)) }, "missed"},
		{"published longest key", func() { pub.Publish(strings.Repeat("y", pgnotify.MaxKey)) }, strings.Repeat("y", pgnotify.MaxKey)},
		{"key with quotes and unicode", func() { pub.Publish(`it's "ü"`) }, `it's "ü"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.send()
			if got := r.next(t); got != tc.want {
				t.Fatalf("got %.40q, want %.40q", got, tc.want)
			}
		})
	}
}

func TestListenerReconnects(t *testing.T) {
	url := pgnotifytest.URL(t)
	ch := pgnotifytest.Channel(t)
	f := open(t, url, pgnotify.Options{Channel: ch})
	pub := open(t, url, pgnotify.Options{Channel: ch})
	r, _ := subscribe(f)
	old := f.Stats().ListenerPID

	pgnotifytest.Terminate(t, url, old)
	if e := r.next(t); e != "missed" { // every watcher wakes: notifications may have been lost
		t.Fatalf("after the reconnect got %q, want missed", e)
	}
	st := f.Stats()
	if st.Reconnects != 1 || st.ListenerPID == 0 || st.ListenerPID == old {
		t.Fatalf("stats after the reconnect %+v (old pid %d)", st, old)
	}
	pub.Publish("after")
	if e := r.next(t); e != "after" {
		t.Fatalf("got %q, want after", e)
	}
}

func TestPublisherReconnects(t *testing.T) {
	url := pgnotifytest.URL(t)
	ch := pgnotifytest.Channel(t)
	f := open(t, url, pgnotify.Options{Channel: ch})
	pub := open(t, url, pgnotify.Options{Channel: ch})
	r, _ := subscribe(f)
	pub.Publish("first")
	if e := r.next(t); e != "first" {
		t.Fatalf("got %q", e)
	}
	old := pub.Stats().PublisherPID
	pgnotifytest.Terminate(t, url, old)
	eventually(t, "the backend to end", func() bool {
		var n int
		pgnotifytest.QueryRow(t, url, `SELECT count(*) FROM pg_stat_activity WHERE pid = $1`, []any{int32(old)}, &n)
		return n == 0
	})
	pub.Publish("second") // fails on the dead connection, then is sent on a new one
	if e := r.next(t); e != "second" {
		t.Fatalf("got %q, want second", e)
	}
	if st := pub.Stats(); st.PublishFailures != 1 || st.PublisherPID == old {
		t.Fatalf("stats %+v (old pid %d)", st, old)
	}
}

// TestPingKeepsTheConnection: the listener's timeouts and pings do not cost it its connection.
func TestPingKeepsTheConnection(t *testing.T) {
	url := pgnotifytest.URL(t)
	ch := pgnotifytest.Channel(t)
	f := open(t, url, pgnotify.Options{Channel: ch, PingInterval: time.Millisecond})
	pub := open(t, url, pgnotify.Options{Channel: ch})
	r, _ := subscribe(f)
	for _, k := range []string{"a", "b", "c"} {
		pub.Publish(k)
		if e := r.next(t); e != k {
			t.Fatalf("got %q, want %q", e, k)
		}
	}
	if st := f.Stats(); st.Reconnects != 0 {
		t.Fatalf("pings reconnected: %+v", st)
	}
}

func TestClose(t *testing.T) {
	url := pgnotifytest.URL(t)
	ch := pgnotifytest.Channel(t)
	f := open(t, url, pgnotify.Options{Channel: ch})
	pub := open(t, url, pgnotify.Options{Channel: ch})
	r, cancel := subscribe(f)
	other, _ := subscribe(f)

	t.Run("cancelled subscriber hears nothing more", func(t *testing.T) {
		cancel()
		pub.Publish("k")
		if e := other.next(t); e != "k" {
			t.Fatalf("got %q", e)
		}
		if len(r) != 0 {
			t.Fatalf("cancelled subscriber got %q", <-r)
		}
	})
	t.Run("queued keys are sent at close", func(t *testing.T) {
		pub.Publish("last")
		if err := pub.Close(); err != nil {
			t.Fatal(err)
		}
		if e := other.next(t); e != "last" {
			t.Fatalf("got %q, want last", e)
		}
	})
	t.Run("closed feed", func(t *testing.T) {
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("second close: %v", err)
		}
		f.Publish("after close") // does nothing, does not block
		pgnotifytest.Exec(t, url, `SELECT pg_notify($1, 'x')`, ch)
		if st := f.Stats(); st.ListenerPID != 0 || st.PublisherPID != 0 {
			t.Fatalf("connections left open: %+v", st)
		}
		if len(other) != 0 {
			var rest []string
			for len(other) > 0 {
				rest = append(rest, <-other)
			}
			t.Fatalf("closed feed delivered %q", rest)
		}
	})
}

func TestOpenErrors(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := lis.Addr().String()
	_ = lis.Close()
	tests := []struct {
		name, url, want string
	}{
		{"malformed URL", "postgres://%zz", "parsing the database URL"},
		{"nobody listening", "postgres://postgres@" + closed + "/test?sslmode=disable&connect_timeout=2", "connecting the listener"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := pgnotify.Open(context.Background(), tc.url, pgnotify.Options{Logger: quiet})
			if err == nil {
				_ = f.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q, want it to mention %q", err, tc.want)
			}
		})
	}
}

func TestMetrics(t *testing.T) {
	url := pgnotifytest.URL(t)
	ch := pgnotifytest.Channel(t)
	reg := prometheus.NewRegistry()
	f := open(t, url, pgnotify.Options{Channel: ch, Registerer: reg})
	pub := open(t, url, pgnotify.Options{Channel: ch})
	r, _ := subscribe(f)
	pub.Publish("k")
	if e := r.next(t); e != "k" {
		t.Fatalf("got %q", e)
	}
	want := `
# HELP pgnotify_received_total Notifications received from other sessions on the channel.
# TYPE pgnotify_received_total counter
pgnotify_received_total{channel="` + ch + `"} 1
# HELP pgnotify_reconnects_total Reconnections of the listener after its connection was lost.
# TYPE pgnotify_reconnects_total counter
pgnotify_reconnects_total{channel="` + ch + `"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "pgnotify_received_total", "pgnotify_reconnects_total"); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg); err != nil || n != 0 {
		t.Fatalf("after Close: %d metrics, %v", n, err)
	}
}

// proxy forwards loopback TCP connections to the PostgreSQL server; down cuts every connection
// and refuses new ones until up, as a network failure or a server restart would.
type proxy struct {
	lis    net.Listener
	target string
	mu     sync.Mutex
	isDown bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
}

func startProxy(t *testing.T, target string) *proxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{lis: lis, target: target, conns: make(map[net.Conn]struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() { _ = lis.Close(); p.down(); p.wg.Wait() })
	return p
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.isDown {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			_ = c.Close()
			continue
		}
		p.conns[c], p.conns[s] = struct{}{}, struct{}{}
		p.wg.Add(2)
		p.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			defer p.wg.Done()
			_, _ = io.Copy(dst, src)
			_ = dst.Close()
			_ = src.Close()
		}
		go pipe(c, s)
		go pipe(s, c)
	}
}

func (p *proxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = true
	for c := range p.conns {
		_ = c.Close()
	}
	clear(p.conns)
}

func (p *proxy) up() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.isDown = false
}

// TestOutage: while the server is unreachable the listener retries with backoff and the
// publisher keeps its keys (beyond MaxPending, as one All); once it is back, the listener wakes
// every watcher and the queued notification goes out.
func TestOutage(t *testing.T) {
	url := pgnotifytest.URL(t)
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	p := startProxy(t, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))))
	viaProxy := "postgres://" + cfg.User + "@" + p.lis.Addr().String() + "/" + cfg.Database + "?sslmode=disable"
	ch := pgnotifytest.Channel(t)
	direct := open(t, url, pgnotify.Options{Channel: ch})
	var logs logBuffer
	cut := open(t, viaProxy, pgnotify.Options{Channel: ch, MaxPending: 2, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	rd, _ := subscribe(direct)
	rc, _ := subscribe(cut)

	p.down()
	for _, k := range []string{"a", "b", "c"} {
		cut.Publish(k)
	}
	eventually(t, "the publisher and the listener to fail again", func() bool {
		return cut.Stats().PublishFailures >= 2 && strings.Contains(logs.String(), "reconnecting the listener failed")
	})
	if len(rd) != 0 {
		t.Fatalf("notification during the outage: %q", <-rd)
	}
	p.up()
	if e := rd.next(t); e != "missed" { // a, b, c collapsed into All
		t.Fatalf("after the outage got %q, want missed", e)
	}
	if e := rc.next(t); e != "missed" { // the listener reconnected
		t.Fatalf("cut feed after the outage got %q, want missed", e)
	}
	eventually(t, "the listener to reconnect", func() bool { return cut.Stats().Reconnects == 1 })
	direct.Publish("after")
	if e := rc.next(t); e != "after" {
		t.Fatalf("got %q, want after", e)
	}
	if len(rd) != 0 {
		t.Fatalf("more after the outage: %q", <-rd)
	}
	for _, want := range []string{
		"level=WARN msg=\"pgnotify: listener connection lost; reconnecting\" channel=" + ch,
		"level=WARN msg=\"pgnotify: reconnecting the listener failed\"",
		"level=WARN msg=\"pgnotify: listener reconnected; waking every watcher\"",
		"level=WARN msg=\"pgnotify: publishing failed; retrying\"",
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s:\n%s", want, logs.String())
		}
	}
}

// logBuffer is a bytes.Buffer safe for the feed's goroutines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
