package upstream_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/upstream"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// freezer is a TCP proxy in front of a backend that can be frozen: it then neither accepts,
// reads nor writes, in both directions, while the kernel keeps the connections open and
// completes new handshakes. That is what a SIGSTOPped process looks like to its clients.
type freezer struct {
	ln      net.Listener
	backend string
	done    chan struct{}
	wg      sync.WaitGroup

	mu     sync.Mutex
	thawed chan struct{} // nil while running; closed at thaw
	conns  map[net.Conn]struct{}
}

func newFreezer(t *testing.T, backend string) *freezer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &freezer{ln: ln, backend: backend, done: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.close)
	return f
}

func (f *freezer) addr() string { return f.ln.Addr().String() }

func (f *freezer) freeze() {
	f.mu.Lock()
	if f.thawed == nil {
		f.thawed = make(chan struct{})
	}
	f.mu.Unlock()
}

func (f *freezer) thaw() {
	f.mu.Lock()
	if f.thawed != nil {
		close(f.thawed)
		f.thawed = nil
	}
	f.mu.Unlock()
}

// wait blocks while frozen; false when the proxy closes.
func (f *freezer) wait() bool {
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

func (f *freezer) track(c net.Conn) bool {
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

func (f *freezer) accept() {
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
func (f *freezer) pipe(dst, src net.Conn) {
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

func (f *freezer) close() {
	f.mu.Lock()
	close(f.done)
	for c := range f.conns {
		_ = c.Close()
	}
	f.mu.Unlock()
	_ = f.ln.Close()
	f.wg.Wait()
}

// fakeClock is the ejection clock of a test.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *fakeClock) advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// TestStuckInstanceEjected: with two instances, one stuck (its process frozen, or its calls
// hanging on a live connection), calls fail only until the ejection threshold; then every
// call goes to the other instance at once, /readyz's counts show the ejection, and once the
// instance answers again it is re-admitted after its ejection time, by one probe.
func TestStuckInstanceEjected(t *testing.T) {
	const (
		threshold = 3
		base      = 30 * time.Second
		timeout   = 150 * time.Millisecond // each call's deadline
	)
	tests := []struct {
		name           string
		stick, unstick func(b *backend, f *freezer)
	}{
		{"frozen process", func(_ *backend, f *freezer) { f.freeze() }, func(_ *backend, f *freezer) { f.thaw() }},
		{"hanging calls", func(b *backend, _ *freezer) { b.hang.Store(true) }, func(b *backend, _ *freezer) { b.hang.Store(false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stuck, fine := start(t, "stuck", 0), start(t, "fine", 0)
			fz := newFreezer(t, stuck.addr)
			clock := &fakeClock{t: time.Unix(1_000_000, 0)}
			set := dial(t, []string{fz.addr(), fine.addr}, upstream.WithClock(upstream.Options{
				Ejection: upstream.Ejection{ConsecutiveFailures: threshold, BaseEjectionTime: base},
			}, clock.now))
			poll(t, "READY", set.Ready)
			client := inventoryv1.NewInventoryServiceClient(set.Conn(svc))
			get := func() (string, time.Duration, error) {
				ctx, cancel := context.WithTimeout(context.Background(), timeout)
				defer cancel()
				began := time.Now()
				item, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{})
				return item.GetName(), time.Since(began), err
			}
			poll(t, "both instances to take calls", func() bool {
				seen := map[string]int{}
				for range 4 {
					name, _, _ := get()
					seen[name]++
				}
				return seen["stuck"] > 0 && seen["fine"] > 0
			})

			tt.stick(stuck, fz)
			failures := 0
			for range 4 * threshold {
				if _, _, err := get(); err != nil {
					if status.Code(err) != codes.DeadlineExceeded {
						t.Fatalf("call failed with %v, want DEADLINE_EXCEEDED", err)
					}
					failures++
				}
			}
			if failures != threshold {
				t.Errorf("%d calls timed out, want %d (the threshold)", failures, threshold)
			}
			if got := set.Instances()[svc]; got != (upstream.Instances{Ready: 1, Ejected: 1, Total: 2}) {
				t.Errorf("instances = %+v, want one ready, one ejected", got)
			}
			if !set.Ready() {
				t.Error("not Ready with one instance serving")
			}
			for range 20 { // none waits for its deadline
				name, took, err := get()
				if err != nil || name != "fine" {
					t.Fatalf("after ejection: %q in %v, %v; want fine", name, took, err)
				}
			}

			// Not before its ejection time: still stuck or not, it gets no call.
			tt.unstick(stuck, fz)
			clock.advance(base - time.Millisecond)
			for range 10 {
				if name, _, err := get(); err != nil || name != "fine" {
					t.Fatalf("before the ejection time: %q, %v", name, err)
				}
			}
			// Then one probe re-admits it.
			clock.advance(time.Millisecond)
			poll(t, "the probe to re-admit the instance", func() bool {
				_, _, _ = get()
				return set.Instances()[svc] == upstream.Instances{Ready: 2, Total: 2}
			})
			seen := map[string]int{}
			for range 20 {
				name, _, err := get()
				if err != nil {
					t.Fatal(err)
				}
				seen[name]++
			}
			if seen["stuck"] != 10 || seen["fine"] != 10 {
				t.Errorf("after re-admission calls = %v, want even", seen)
			}
		})
	}
}

// TestLastInstanceNotEjected: a lone instance whose calls time out keeps its calls and its
// count, however many fail.
func TestLastInstanceNotEjected(t *testing.T) {
	b := start(t, "b", 0)
	set := dial(t, []string{b.addr}, upstream.Options{Ejection: upstream.Ejection{ConsecutiveFailures: 2}})
	poll(t, "READY", set.Ready)
	b.hang.Store(true)
	client := inventoryv1.NewInventoryServiceClient(set.Conn(svc))
	for range 6 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{})
		cancel()
		if status.Code(err) != codes.DeadlineExceeded {
			t.Fatalf("err = %v, want DEADLINE_EXCEEDED", err)
		}
	}
	if got := set.Instances()[svc]; got != (upstream.Instances{Ready: 1, Total: 1}) {
		t.Errorf("instances = %+v, want the lone instance ready", got)
	}
	b.hang.Store(false)
	if _, err := client.GetItem(context.Background(), &inventoryv1.GetItemRequest{}); err != nil {
		t.Errorf("after the hang: %v", err)
	}
}

// TestKeepaliveDetectsFrozen: with no call in flight, a frozen instance's connection fails its
// keepalive ping and leaves READY within KeepaliveTime+KeepaliveTimeout, so calls go to the
// other instance and a lone frozen instance makes the set not Ready; thawed, it comes back.
// grpc-go pings no sooner than 10s: this test takes that long.
func TestKeepaliveDetectsFrozen(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a keepalive ping (10s)")
	}
	const kaTimeout = time.Second
	tests := []struct {
		name      string
		instances int // the first one freezes
		wantReady bool
	}{
		{"one of two frozen", 2, true},
		{"the only instance frozen", 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var addrs []string
			var fz *freezer
			for i := range tt.instances {
				b := start(t, string(rune('a'+i)), 0)
				f := newFreezer(t, b.addr)
				if i == 0 {
					fz = f
				}
				addrs = append(addrs, f.addr())
			}
			set := dial(t, addrs, upstream.Options{
				KeepaliveTime:    10 * time.Second,
				KeepaliveTimeout: kaTimeout,
				Ejection:         upstream.Ejection{Disabled: true}, // keepalive alone
			})
			poll(t, "READY", func() bool { return set.Instances()[svc].Ready == tt.instances })

			fz.freeze()
			frozenAt := time.Now()
			for set.Instances()[svc].Ready != tt.instances-1 {
				if time.Since(frozenAt) > 10*time.Second+kaTimeout+5*time.Second {
					t.Fatalf("frozen instance still READY after %v: %+v", time.Since(frozenAt), set.Instances()[svc])
				}
				time.Sleep(50 * time.Millisecond)
			}
			t.Logf("frozen instance left READY after %v", time.Since(frozenAt).Round(100*time.Millisecond))
			if set.Ready() != tt.wantReady {
				t.Errorf("Ready = %v, want %v", set.Ready(), tt.wantReady)
			}
			if tt.wantReady {
				client := inventoryv1.NewInventoryServiceClient(set.Conn(svc))
				for range 10 {
					ctx, cancel := context.WithTimeout(context.Background(), time.Second)
					began := time.Now()
					item, err := client.GetItem(ctx, &inventoryv1.GetItemRequest{})
					cancel()
					if err != nil || item.GetName() != "b" || time.Since(began) > 500*time.Millisecond {
						t.Fatalf("call after detection: %q in %v, %v", item.GetName(), time.Since(began), err)
					}
				}
			}

			fz.thaw()
			poll(t, "the thawed instance to be READY again", func() bool { return set.Instances()[svc].Ready == tt.instances })
		})
	}
}
