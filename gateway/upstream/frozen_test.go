package upstream_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/upstream"
	"github.com/acme/shopgate/gateway/upstream/upstreamtest"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

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
		stick, unstick func(b *backend, f *upstreamtest.Freezer)
	}{
		{"frozen process", func(_ *backend, f *upstreamtest.Freezer) { f.Freeze() }, func(_ *backend, f *upstreamtest.Freezer) { f.Thaw() }},
		{"hanging calls", func(b *backend, _ *upstreamtest.Freezer) { b.hang.Store(true) }, func(b *backend, _ *upstreamtest.Freezer) { b.hang.Store(false) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stuck, fine := start(t, "stuck", 0), start(t, "fine", 0)
			fz := upstreamtest.NewFreezer(t, stuck.addr)
			clock := &fakeClock{t: time.Unix(1_000_000, 0)}
			set := dial(t, []string{fz.Addr(), fine.addr}, upstream.WithClock(upstream.Options{
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
			var fz *upstreamtest.Freezer
			for i := range tt.instances {
				b := start(t, string(rune('a'+i)), 0)
				f := upstreamtest.NewFreezer(t, b.addr)
				if i == 0 {
					fz = f
				}
				addrs = append(addrs, f.Addr())
			}
			set := dial(t, addrs, upstream.Options{
				KeepaliveTime:    10 * time.Second,
				KeepaliveTimeout: kaTimeout,
				Ejection:         upstream.Ejection{Disabled: true}, // keepalive alone
			})
			poll(t, "READY", func() bool { return set.Instances()[svc].Ready == tt.instances })

			fz.Freeze()
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

			fz.Thaw()
			poll(t, "the thawed instance to be READY again", func() bool { return set.Instances()[svc].Ready == tt.instances })
		})
	}
}
