package events_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/shopgate/services/events"
)

func TestEmbeddedBrokerKeepsMessagesAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	e, err := events.StartEmbedded(dir, events.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	b, err := e.Connect(ctxTimeout(t, 5*time.Second), events.Config{})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for range 3 {
		env := newOrderCreated(t, events.NewID())
		publishEnvelope(t, b, env, env.GetEventId())
		want = append(want, env.GetEventId())
	}
	_ = b.Close()
	_ = e.Close()

	// A new server on the same directory: another process start, in effect.
	e2 := startEmbedded(t, dir, events.EmbeddedConfig{})
	b2 := connectEmbedded(t, e2, events.Config{})
	got := streamEventIDs(t, b2, "")
	if len(got) != len(want) {
		t.Fatalf("after restart the stream holds %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("after restart the stream holds %v, want %v", got, want)
		}
	}
}

// TestRelayAndConsumerResumeAfterBrokerRestart restarts the broker under a running relay and
// consumer: the in-process embedded server, and a server on a loopback TCP port that plays an
// external cluster (the machine's own NATS cannot be restarted by a test).
func TestRelayAndConsumerResumeAfterBrokerRestart(t *testing.T) {
	tests := []struct {
		name   string
		listen string
	}{
		{"embedded in process", ""},
		{"external over TCP", "127.0.0.1:0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{Listen: tt.listen})
			cfg := events.Config{ReconnectWait: 20 * time.Millisecond, RequestTimeout: 500 * time.Millisecond,
				BackOff: []time.Duration{10 * time.Millisecond}}
			var b *events.JetStream
			if tt.listen == "" {
				b = connectEmbedded(t, e, cfg)
			} else {
				var err error
				if b, err = events.Dial(ctxTimeout(t, 5*time.Second), e.ClientURL(), cfg); err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = b.Close() })
			}
			db := openDB(t)
			r, err := events.NewRelay(db, b, events.RelayConfig{PollInterval: 50 * time.Millisecond,
				MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			r.Start()
			defer func() { _ = r.Close() }()
			consumed := openDB(t)
			var handled atomic.Int32
			h := applyOnce(consumed, "inventory")
			sub, err := b.Subscribe(ctxTimeout(t, 5*time.Second), "inventory", []string{orderCreated},
				func(ctx context.Context, m events.Message) error {
					err := h(ctx, m)
					if err == nil {
						handled.Add(1)
					}
					return err
				})
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Stop()

			before := commitEvent(t, db, "before", true)
			r.Notify()
			eventually(t, 10*time.Second, "first event not handled", func() bool { return effectCount(t, consumed, "before") == 1 })

			e.Stop()
			during := commitEvent(t, db, "during", true) // committed while the broker is down
			r.Notify()
			if err := e.Start(); err != nil {
				t.Fatal(err)
			}
			after := commitEvent(t, db, "after", true)
			r.Notify()
			for _, env := range []string{before.GetOrderId(), during.GetOrderId(), after.GetOrderId()} {
				eventually(t, 20*time.Second, "event "+env+" not handled after the restart", func() bool {
					return effectCount(t, consumed, env) == 1
				})
			}
			if unpublished(t, db) != 0 {
				t.Fatal("outbox rows left unpublished")
			}
		})
	}
}

func TestStartEmbeddedRejectsBadConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  events.EmbeddedConfig
	}{
		{"negative store", events.EmbeddedConfig{MaxStore: -1}},
		{"bad listen address", events.EmbeddedConfig{Listen: "nonsense"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := events.StartEmbedded(t.TempDir(), tt.cfg)
			if err == nil {
				_ = e.Close()
				t.Fatal("StartEmbedded accepted it")
			}
		})
	}
}

// A stream setting that a server refuses as such (three replicas on a single server) fails the
// connection at once with the server's reason, instead of being retried until the deadline.
func TestReplicasOnASingleServerFailAtOnce(t *testing.T) {
	e, err := events.StartEmbedded(t.TempDir(), events.EmbeddedConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	b, err := e.Connect(ctx, events.Config{Replicas: 3})
	if err == nil {
		_ = b.Close()
		t.Fatal("a three-replica stream on a single server was accepted")
	}
	if !strings.Contains(err.Error(), "replicas") || ctx.Err() != nil {
		t.Fatalf("after %v: %v; want the server's refusal before the deadline", time.Since(start), err)
	}
}
