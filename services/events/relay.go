package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
)

// RelayConfig configures a Relay. Its zero value means the defaults.
type RelayConfig struct {
	// Name labels the relay's metrics and logs (the service: "order"). Default "outbox".
	Name string
	// BatchSize is how many outbox rows one round reads and publishes. Default 100; at most
	// MaxBatchSize (a round marks its rows with one statement, a parameter each).
	BatchSize int
	// PollInterval is the safety net: the relay looks at the outbox this often even when nobody
	// called Notify. Default 1s.
	PollInterval time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed round (broker or database down);
	// it doubles from the first to the second. Defaults 100ms and 5s.
	MinBackoff, MaxBackoff time.Duration
	// Retention is how long published rows stay in the outbox before they are pruned.
	// Default 24h.
	Retention time.Duration
	// InboxRetention is how long the inbox remembers that an event was handled. It must outlast
	// any redelivery of that event: the stream drops messages after its MaxAge (7 days by
	// default), and the outbox keeps a row for Retention. Default 8 days.
	InboxRetention time.Duration
	// PruneInterval is how often published rows and old inbox entries are pruned. Default 1m.
	PruneInterval time.Duration
	// Now is the clock used to stamp and prune rows. Default time.Now.
	Now func() time.Time
	// Logger receives the relay's failures. Default slog.Default().
	Logger *slog.Logger
	// Registerer receives events_relay_published_total and events_relay_errors_total.
	// Default: none registered.
	Registerer prometheus.Registerer
	// TracerProvider, when set, gives every publish a producer span (messaging conventions),
	// the child of the trace context the event's envelope recorded, and sends the span's
	// context in the message's headers. Default nil: no span, no headers.
	TracerProvider trace.TracerProvider
	// MessagingSystem is the spans' messaging.system. Default DefaultMessagingSystem (nats).
	MessagingSystem string
	// DuplicateForTesting publishes every row a second time under another message id, so that
	// the broker delivers every event twice; tests use it to prove the consumers' idempotency.
	// Default false. Never set it in production.
	DuplicateForTesting bool
}

// MaxBatchSize bounds RelayConfig.BatchSize, well under SQLite's 32766 parameters a statement.
const MaxBatchSize = 10000

func (c RelayConfig) withDefaults() (RelayConfig, error) {
	if c.Name == "" {
		c.Name = "outbox"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 100
	}
	if c.PollInterval == 0 {
		c.PollInterval = time.Second
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.Retention == 0 {
		c.Retention = 24 * time.Hour
	}
	if c.InboxRetention == 0 {
		c.InboxRetention = 8 * 24 * time.Hour
	}
	if c.PruneInterval == 0 {
		c.PruneInterval = time.Minute
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	switch {
	case c.BatchSize < 1 || c.BatchSize > MaxBatchSize:
		return c, fmt.Errorf("batch size %d: want 1 to %d", c.BatchSize, MaxBatchSize)
	case c.PollInterval < 0 || c.MinBackoff < 0 || c.Retention < 0 || c.InboxRetention < 0 || c.PruneInterval < 0:
		return c, errors.New("durations must not be negative")
	case c.MaxBackoff < c.MinBackoff:
		return c, fmt.Errorf("max backoff %v < min backoff %v", c.MaxBackoff, c.MinBackoff)
	}
	return c, nil
}

// Relay publishes a service's outbox to the broker: committed rows, in commit order, each
// marked published only after the broker acknowledged it (so a crash in between publishes it
// again, and the broker drops the copy by its message id, the event id). Start runs it; Close
// stops it.
type Relay struct {
	db     *sql.DB
	broker Broker
	cfg    RelayConfig

	tracer    *eventTracer // nil: tracing off
	wake      chan struct{}
	published prometheus.Counter
	errs      prometheus.Counter

	startOnce sync.Once
	stopOnce  sync.Once
	cancel    context.CancelFunc
	done      chan struct{}
}

// NewRelay returns a relay of the outbox in db (which holds Schema) to broker; Start runs it.
func NewRelay(db *sql.DB, broker Broker, cfg RelayConfig) (*Relay, error) {
	if db == nil || broker == nil {
		return nil, errors.New("creating relay: nil database or broker")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating relay: %w", err)
	}
	r := &Relay{db: db, broker: broker, cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{}),
		tracer: newEventTracer(cfg.TracerProvider, cfg.MessagingSystem)}
	labels := prometheus.Labels{"relay": cfg.Name}
	r.published = prometheus.NewCounter(prometheus.CounterOpts{Name: "events_relay_published_total",
		Help: "Outbox rows published and acknowledged by the broker.", ConstLabels: labels})
	r.errs = prometheus.NewCounter(prometheus.CounterOpts{Name: "events_relay_errors_total",
		Help: "Failed relay rounds (broker or database unavailable).", ConstLabels: labels})
	if cfg.Registerer != nil {
		if r.published, err = register(cfg.Registerer, r.published); err != nil {
			return nil, fmt.Errorf("creating relay: %w", err)
		}
		if r.errs, err = register(cfg.Registerer, r.errs); err != nil {
			return nil, fmt.Errorf("creating relay: %w", err)
		}
	}
	return r, nil
}

// Notify wakes the relay at once; call it after each commit that appended outbox rows. It never
// blocks.
func (r *Relay) Notify() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// Start runs the relay in a goroutine until Close. Calling it again does nothing.
func (r *Relay) Start() {
	r.startOnce.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		r.cancel = cancel
		go r.run(ctx)
	})
}

// Close stops the relay and waits for it; a publish in flight is abandoned (its row stays
// unpublished and goes out at the next start). Idempotent.
func (r *Relay) Close() error {
	r.stopOnce.Do(func() {
		r.startOnce.Do(func() { close(r.done) }) // never started
		if r.cancel != nil {
			r.cancel()
		}
		<-r.done
	})
	return nil
}

func (r *Relay) run(ctx context.Context) {
	defer close(r.done)
	poll := time.NewTicker(r.cfg.PollInterval)
	defer poll.Stop()
	prune := time.NewTicker(r.cfg.PruneInterval)
	defer prune.Stop()
	backoff := time.Duration(0)
	for {
		n, err := r.PublishPending(ctx)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			r.errs.Inc()
			backoff = min(max(2*backoff, r.cfg.MinBackoff), r.cfg.MaxBackoff)
			r.cfg.Logger.Warn("outbox relay round failed", "relay", r.cfg.Name, "err", err, "retry_in", backoff)
			t := time.NewTimer(backoff)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
			continue
		case n == r.cfg.BatchSize:
			backoff = 0
			continue // more may be waiting
		}
		backoff = 0
		select {
		case <-ctx.Done():
			return
		case <-r.wake:
		case <-poll.C:
		case <-prune.C:
			if _, err := r.Prune(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("pruning the outbox", "relay", r.cfg.Name, "err", err)
			}
			if _, err := r.PruneInbox(ctx); err != nil && ctx.Err() == nil {
				r.cfg.Logger.Warn("pruning the inbox", "relay", r.cfg.Name, "err", err)
			}
		}
	}
}

type outboxRow struct {
	seq     int64
	eventID string
	subject string
	body    []byte
}

// PublishPending publishes one batch of unpublished rows in order, stopping at the first
// failure, marks the published ones and reports how many it published. The running relay calls
// it; tests and tools may call it directly on a relay that is not started.
func (r *Relay) PublishPending(ctx context.Context) (int, error) {
	rows, err := r.pending(ctx)
	if err != nil {
		return 0, err
	}
	done := 0
	var pubErr error
	for _, row := range rows {
		msg := Message{Type: strings.TrimPrefix(row.subject, SubjectPrefix), ID: row.eventID, Data: row.body}
		if pubErr = r.publish(ctx, row.subject, msg); pubErr != nil {
			break
		}
		done++
	}
	if done > 0 {
		if err := r.markPublished(context.WithoutCancel(ctx), rows[:done]); err != nil {
			return 0, err
		}
		r.published.Add(float64(done))
	}
	if pubErr != nil {
		return done, pubErr
	}
	return done, nil
}

// markPublished marks exactly rows as published, by their seq. Not the range from the first
// to the last: under concurrent writers a row can commit inside that range after the read
// (a lower seq committing later), and marking the range would mark it without its having
// been sent, a lost event.
func (r *Relay) markPublished(ctx context.Context, rows []outboxRow) error {
	var q strings.Builder
	q.WriteString(`UPDATE outbox SET published_at = ? WHERE published_at IS NULL AND seq IN (`)
	args := make([]any, 0, len(rows)+1)
	args = append(args, r.cfg.Now().UnixNano())
	for i, row := range rows {
		if i > 0 {
			q.WriteByte(',')
		}
		q.WriteByte('?')
		args = append(args, row.seq)
	}
	q.WriteByte(')')
	if _, err := r.db.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("marking %d outbox rows published: %w", len(rows), err)
	}
	return nil
}

// publish publishes msg (twice with DuplicateForTesting), in its producer span when tracing.
func (r *Relay) publish(ctx context.Context, subject string, msg Message) (err error) {
	if r.tracer != nil {
		var span trace.Span
		ctx, span = r.tracer.startPublish(ctx, subject, &msg)
		defer func() { end(span, err) }()
	}
	if err := r.broker.Publish(ctx, msg); err != nil {
		return err
	}
	if r.cfg.DuplicateForTesting {
		msg.ID += "#duplicate"
		return r.broker.Publish(ctx, msg)
	}
	return nil
}

func (r *Relay) pending(ctx context.Context) ([]outboxRow, error) {
	rows, err := r.db.QueryContext(ctx,
		`SELECT seq, event_id, subject, envelope FROM outbox WHERE published_at IS NULL ORDER BY seq LIMIT ?`,
		r.cfg.BatchSize)
	if err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	defer rows.Close()
	var out []outboxRow
	for rows.Next() {
		var row outboxRow
		if err := rows.Scan(&row.seq, &row.eventID, &row.subject, &row.body); err != nil {
			return nil, fmt.Errorf("reading the outbox: %w", err)
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the outbox: %w", err)
	}
	return out, nil
}

// Prune deletes the rows published longer than Retention ago and reports how many.
func (r *Relay) Prune(ctx context.Context) (int64, error) {
	res, err := r.db.ExecContext(ctx, `DELETE FROM outbox WHERE published_at IS NOT NULL AND published_at < ?`,
		r.cfg.Now().Add(-r.cfg.Retention).UnixNano())
	if err != nil {
		return 0, fmt.Errorf("pruning the outbox: %w", err)
	}
	return res.RowsAffected()
}

// PruneInbox deletes the inbox entries of events handled longer than InboxRetention ago, which
// no redelivery can bring back any more, and reports how many.
func (r *Relay) PruneInbox(ctx context.Context) (int64, error) {
	res, err := r.db.ExecContext(ctx, `DELETE FROM inbox WHERE processed_at < ?`, r.cfg.Now().Add(-r.cfg.InboxRetention).UnixNano())
	if err != nil {
		return 0, fmt.Errorf("pruning the inbox: %w", err)
	}
	return res.RowsAffected()
}
