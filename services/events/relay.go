package events

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/acme/shopgate/services/storage"
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
	// Dialect is the SQL dialect of the database holding the outbox. Default storage.SQLite.
	Dialect storage.Dialect
	// Registerer receives events_relay_published_total and events_relay_errors_total.
	// Default: none registered.
	Registerer prometheus.Registerer
	// TracerProvider, when set, gives every publish a producer span (messaging conventions),
	// the child of the trace context the event's envelope recorded, and sends the span's
	// context in the message's headers. Default nil: no span, no headers.
	TracerProvider trace.TracerProvider
	// MessagingSystem is the spans' messaging.system. Default: the broker's ("nats", "kafka").
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
	dest      func(eventType string) string
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
	system, dest := describe(broker)
	if cfg.MessagingSystem == "" {
		cfg.MessagingSystem = system
	}
	r := &Relay{db: db, broker: broker, cfg: cfg, wake: make(chan struct{}, 1), done: make(chan struct{}),
		tracer: newEventTracer(cfg.TracerProvider, cfg.MessagingSystem), dest: dest}
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

// PublishPending publishes one batch of unpublished rows in order, stopping at the first
// failure, marks the published ones and reports how many it published. The running relay calls
// it; tests and tools may call it directly on a relay that is not started.
func (r *Relay) PublishPending(ctx context.Context) (int, error) {
	release, ok, err := r.claim(ctx)
	if err != nil || !ok {
		return 0, err
	}
	defer release()
	rows, err := r.pending(ctx)
	if err != nil {
		return 0, err
	}
	done, pubErr := r.publishRows(ctx, rows)
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

// publishRows publishes rows in order and returns how many, from the first, the broker
// acknowledged, and the first failure. A broker that publishes batches (batchPublisher) gets
// them all at once; else they go one by one, stopping at the first failure.
func (r *Relay) publishRows(ctx context.Context, rows []outboxRow) (int, error) {
	msgs := make([]Message, len(rows))
	for i, row := range rows {
		msgs[i] = Message{Type: row.eventType, ID: row.eventID, Key: row.key, Data: row.body}
	}
	bp, ok := r.broker.(batchPublisher)
	if !ok || r.cfg.DuplicateForTesting || len(msgs) == 1 {
		for i, msg := range msgs {
			if err := r.publish(ctx, r.dest(msg.Type), msg); err != nil {
				return i, err
			}
		}
		return len(msgs), nil
	}
	var spans []trace.Span
	if r.tracer != nil {
		spans = make([]trace.Span, len(msgs))
		for i := range msgs {
			_, spans[i] = r.tracer.startPublish(ctx, r.dest(msgs[i].Type), &msgs[i])
		}
	}
	errs := bp.PublishBatch(ctx, msgs)
	done := -1
	for i, err := range errs {
		if spans != nil {
			end(spans[i], err)
		}
		if err != nil && done < 0 {
			done = i
		}
	}
	if done < 0 {
		return len(msgs), nil
	}
	return done, errs[done]
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
