package events_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/proto"
	_ "modernc.org/sqlite"
)

// externalURL is the NATS server this machine runs for the tests.
const externalURL = "nats://127.0.0.1:4222"

// openDB opens a fresh SQLite database with the outbox/inbox and a counter table for effects.
func openDB(t *testing.T) *sql.DB { return openDBFor(t) }

// openDBFor is openDB for tests and benchmarks.
func openDBFor(t testing.TB) *sql.DB {
	t.Helper()
	dsn := "file:" + filepath.Join(t.TempDir(), "svc.db") + "?_pragma=busy_timeout(5000)&_pragma=journal_mode(WAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Exec(events.Schema + events.OutboxMigration + `CREATE TABLE effects (order_id TEXT PRIMARY KEY, n INTEGER NOT NULL);`); err != nil {
		t.Fatal(err)
	}
	return db
}

// commitEvent writes a state change and its event in one transaction, committed or rolled back.
func commitEvent(t *testing.T, db *sql.DB, orderID string, commit bool) *eventsv1.Envelope {
	t.Helper()
	ctx := context.Background()
	env, err := events.NewEnvelope("order", orderID, &eventsv1.OrderCreated{OrderId: orderID}, time.Now(), nil)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO effects (order_id, n) VALUES (?, 0)`, "state-"+orderID); err != nil {
		t.Fatal(err)
	}
	if err := events.Append(ctx, tx, env); err != nil {
		t.Fatal(err)
	}
	if commit {
		err = tx.Commit()
	} else {
		err = tx.Rollback()
	}
	if err != nil {
		t.Fatal(err)
	}
	return env
}

// brokerCase is a broker the tests run against.
type brokerCase struct {
	name string
	open func(t *testing.T, cfg events.Config) *events.JetStream
	// openShared opens one connection per cfg to one broker and one stream, as the instances
	// of a service in separate processes would (each cfg may have its own Registerer and
	// Logger; their stream and prefix are set here).
	openShared func(t *testing.T, cfgs ...events.Config) []*events.JetStream
}

// brokers returns the embedded broker and the machine's external NATS (skipped, or failed when
// CI=true, if it is not running).
func brokers() []brokerCase {
	return []brokerCase{
		{"embedded", func(t *testing.T, cfg events.Config) *events.JetStream {
			e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
			return connectEmbedded(t, e, cfg)
		}, func(t *testing.T, cfgs ...events.Config) []*events.JetStream {
			e := startEmbedded(t, t.TempDir(), events.EmbeddedConfig{})
			out := make([]*events.JetStream, len(cfgs))
			for i, cfg := range cfgs {
				out[i] = connectEmbedded(t, e, cfg)
			}
			return out
		}},
		{"external", func(t *testing.T, cfg events.Config) *events.JetStream {
			requireExternal(t)
			cfg = uniqueStream(t, cfg)
			b, err := events.Dial(ctxTimeout(t, 10*time.Second), externalURL, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() {
				_ = b.JetStream().DeleteStream(context.Background(), b.Stream())
				_ = b.Close()
			})
			return b
		}, func(t *testing.T, cfgs ...events.Config) []*events.JetStream {
			requireExternal(t)
			shared := uniqueStream(t, events.Config{})
			out := make([]*events.JetStream, len(cfgs))
			t.Cleanup(func() { // the stream first, while a connection is open
				for i, b := range out {
					if b == nil {
						continue
					}
					if i == 0 {
						_ = b.JetStream().DeleteStream(context.Background(), b.Stream())
					}
					_ = b.Close()
				}
			})
			for i, cfg := range cfgs {
				cfg.Stream, cfg.SubjectPrefix = shared.Stream, shared.SubjectPrefix
				b, err := events.Dial(ctxTimeout(t, 10*time.Second), externalURL, cfg)
				if err != nil {
					t.Fatal(err)
				}
				out[i] = b
			}
			return out
		}},
	}
}

// uniqueStream gives cfg a stream name and subject prefix of its own on a shared server.
func uniqueStream(t *testing.T, cfg events.Config) events.Config {
	id := events.NewID()[:12]
	cfg.Stream = "TEST_" + id
	cfg.SubjectPrefix = "test" + id + "."
	return cfg
}

func requireExternal(t *testing.T) {
	t.Helper()
	c, err := net.DialTimeout("tcp", "127.0.0.1:4222", time.Second)
	if err != nil {
		msg := fmt.Sprintf("NATS with JetStream is not running at %s: %v", externalURL, err)
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = c.Close()
}

func startEmbedded(t *testing.T, dir string, cfg events.EmbeddedConfig) *events.Embedded {
	t.Helper()
	e, err := events.StartEmbedded(dir, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func connectEmbedded(t *testing.T, e *events.Embedded, cfg events.Config) *events.JetStream {
	t.Helper()
	b, err := e.Connect(ctxTimeout(t, 10*time.Second), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func ctxTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// streamEventIDs reads every message of subject from the stream, in stream order, returning the
// envelopes' event ids.
func streamEventIDs(t *testing.T, b *events.JetStream, subject string) []string {
	t.Helper()
	ctx := ctxTimeout(t, 10*time.Second)
	s, err := b.JetStream().Stream(ctx, b.Stream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		if subject != "" && m.Subject != subject {
			continue
		}
		var env eventsv1.Envelope
		if err := proto.Unmarshal(m.Data, &env); err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		ids = append(ids, env.GetEventId())
	}
	return ids
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var _ = jetstream.MsgIDHeader

// syncBuffer is a bytes.Buffer safe for the concurrent writes of a logger under test.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// logRecord is one decoded JSON log line.
type logRecord map[string]any

func (r logRecord) str(key string) string { s, _ := r[key].(string); return s }

// captureLogs returns a JSON logger at debug level and a function decoding every line it has
// written so far (a line that is not one JSON object fails the test).
func captureLogs(t *testing.T) (*slog.Logger, func() []logRecord) {
	t.Helper()
	buf := &syncBuffer{}
	log := slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return log, func() []logRecord {
		t.Helper()
		var out []logRecord
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			if line == "" {
				continue
			}
			var r logRecord
			if err := json.Unmarshal([]byte(line), &r); err != nil {
				t.Fatalf("log line %q is not JSON: %v", line, err)
			}
			out = append(out, r)
		}
		return out
	}
}

// counterValue is the value of the counter name with exactly these labels on g (0 if absent).
func counterValue(t *testing.T, g prometheus.Gatherer, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; !ok || v != lp.GetValue() {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}
