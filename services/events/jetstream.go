package events

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// JetStream is the Broker on a NATS JetStream stream, created or updated at connection with file
// storage. Safe for concurrent use.
type JetStream struct {
	cfg     Config
	nc      *nats.Conn
	js      jetstream.JetStream
	metrics *consumerMetrics
}

var _ Broker = (*JetStream)(nil)

// Dial connects to the NATS server or cluster at url (comma-separated URLs for several) and
// creates or updates the stream. The client reconnects forever with backoff; Dial itself retries
// until ctx is done when the server is not reachable yet.
func Dial(ctx context.Context, url string, cfg Config) (*JetStream, error) {
	if url == "" {
		return nil, errors.New("dialing broker: empty url")
	}
	return connect(ctx, cfg, url, nil)
}

func connect(ctx context.Context, cfg Config, url string, inProcess nats.InProcessConnProvider) (*JetStream, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("connecting to broker: %w", err)
	}
	metrics, err := newConsumerMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("connecting to broker: registering metrics: %w", err)
	}
	log := cfg.Logger
	wait := cfg.ReconnectWait
	opts := []nats.Option{
		nats.Name(cfg.Name),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.ReconnectBufSize(8 << 20),
		nats.Timeout(cfg.RequestTimeout),
		nats.CustomReconnectDelay(func(attempts int) time.Duration {
			d := wait
			for i := 1; i < attempts && d < 5*time.Second; i++ {
				d *= 2
			}
			return min(d, 5*time.Second)
		}),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("broker disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { log.Info("broker reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	if inProcess != nil {
		opts = append(opts, nats.InProcessServer(inProcess))
	}
	opts = append(opts, tlsOptions(cfg.TLS)...)
	opts = append(opts, authOptions(ctx, cfg)...) // last: it checks the login with the others
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to broker: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("connecting to broker: %w", err)
	}
	b := &JetStream{cfg: cfg, nc: nc, js: js, metrics: metrics}
	if err := retry(ctx, cfg.ReconnectWait, func() error { return b.ensureStream(ctx) }); err != nil {
		nc.Close()
		return nil, fmt.Errorf("creating stream %s: %w", cfg.Stream, err)
	}
	return b, nil
}

func (b *JetStream) ensureStream(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	_, err := b.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        b.cfg.Stream,
		Description: "shopgate order-flow events",
		Subjects:    []string{b.cfg.SubjectPrefix + ">"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      b.cfg.MaxAge,
		Duplicates:  b.cfg.Duplicates,
		Replicas:    b.cfg.Replicas,
	})
	return err
}

// retry calls fn until it succeeds or ctx is done, waiting between calls from first up to 2s.
// An error no retry can cure (unretryable) is returned at once.
func retry(ctx context.Context, first time.Duration, fn func() error) error {
	wait := first
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if unretryable(err) {
			return err
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (last error: %w)", ctx.Err(), err)
		case <-t.C:
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// JetStream API error codes that no retry cures: the stream's configuration is refused as such
// (replicas on a single server, an invalid setting). A cluster still forming answers others
// ("insufficient resources", "no suitable peers"), which pass.
const (
	jsErrCodeReplicasNotSupported jetstream.ErrorCode = 10074 // replicas > 1 not supported in non-clustered mode
	jsErrCodeStreamInvalidConfig  jetstream.ErrorCode = 10052
)

// unretryable reports whether err is a JetStream refusal that retrying cannot change.
func unretryable(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case jsErrCodeReplicasNotSupported, jsErrCodeStreamInvalidConfig, jetstream.JSErrCodeBadRequest:
		return true
	}
	return false
}

// Subject returns the subject of an event type on this broker.
func (b *JetStream) Subject(eventType string) string { return b.cfg.SubjectPrefix + eventType }

// DeadLetterSubject returns where consumer's given-up messages of eventType go.
func (b *JetStream) DeadLetterSubject(consumer, eventType string) string {
	return b.cfg.SubjectPrefix + DeadLetterName(consumer) + "." + eventType
}

func (b *JetStream) messagingSystem() string { return "nats" }

// destination is the subject with the default prefix (a span names the event type's subject
// the same way whatever prefix a test gives the stream).
func (b *JetStream) destination(eventType string) string { return SubjectPrefix + eventType }

// Stream returns the stream's name.
func (b *JetStream) Stream() string { return b.cfg.Stream }

// Conn returns the NATS connection, for inspection in tests and health checks.
func (b *JetStream) Conn() *nats.Conn { return b.nc }

// JetStream returns the JetStream context, for inspection in tests and tools.
func (b *JetStream) JetStream() jetstream.JetStream { return b.js }

// Publish implements Broker.
func (b *JetStream) Publish(ctx context.Context, msg Message) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	if _, err := b.js.PublishMsg(ctx, natsMsg(b.Subject(msg.Type), msg), jetstream.WithMsgID(msg.ID)); err != nil {
		return fmt.Errorf("publishing %s %s: %w", msg.Type, msg.ID, err)
	}
	return nil
}

// Close implements Broker: it flushes what is buffered and closes the connection.
func (b *JetStream) Close() error {
	_ = b.nc.FlushTimeout(time.Second)
	b.nc.Close()
	return nil
}

// Subscribe implements Broker with a durable pull consumer named consumer (explicit ack,
// AckWait, no server-side delivery limit: the dead-letter decision is taken here, after
// MaxAttempts, so that no message is dropped without a trace). It retries creating the consumer
// until ctx is done.
func (b *JetStream) Subscribe(ctx context.Context, consumer string, types []string, h Handler) (Subscription, error) {
	if consumer == "" || strings.ContainsAny(consumer, ". *>") || len(types) == 0 || h == nil {
		return nil, fmt.Errorf("subscribing %q: invalid consumer name, no types or nil handler", consumer)
	}
	subjects := make([]string, len(types))
	typeOf := make(map[string]string, len(types))
	for i, t := range types {
		subjects[i] = b.Subject(t)
		typeOf[subjects[i]] = t
	}
	s := &jsSubscription{b: b, typeOf: typeOf}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.p = &dispatcher{consumer: consumer, cfg: b.cfg, metrics: b.metrics, h: h, ctx: s.ctx,
		deadLetter: func(ctx context.Context, dl Message) error { return b.publishDeadLetter(ctx, consumer, dl) }}
	// One durable consumer for the service filtering on all its subjects; a server older than
	// 2.10 takes one filter per consumer, so there the service gets one durable per event type.
	filters := [][]string{subjects}
	names := []string{consumer}
	cons, err := b.createConsumer(ctx, consumer, subjects)
	if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
		filters, names = nil, nil
		for i, subj := range subjects {
			filters = append(filters, []string{subj})
			names = append(names, consumer+"_"+types[i][strings.LastIndexByte(types[i], '.')+1:])
		}
		cons = nil
	} else if err != nil {
		s.cancel()
		return nil, fmt.Errorf("creating consumer %s: %w", consumer, err)
	}
	for i, name := range names {
		c := cons
		if c == nil {
			if c, err = b.createConsumer(ctx, name, filters[i]); err != nil {
				s.Stop()
				return nil, fmt.Errorf("creating consumer %s: %w", name, err)
			}
		}
		cc, err := c.Consume(s.handle,
			jetstream.PullMaxMessages(64),
			jetstream.PullExpiry(5*time.Second),
			jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
				if !errors.Is(err, nats.ErrConnectionClosed) {
					b.cfg.Logger.Debug("consumer pull", "consumer", name, "err", err)
				}
			}))
		if err != nil {
			s.Stop()
			return nil, fmt.Errorf("consuming %s: %w", name, err)
		}
		s.ccs = append(s.ccs, cc)
	}
	return s, nil
}

// createConsumer creates or updates a durable pull consumer, retrying until ctx is done unless
// the server does not support its filters.
func (b *JetStream) createConsumer(ctx context.Context, name string, subjects []string) (jetstream.Consumer, error) {
	cc := jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "shopgate service consumer",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       b.cfg.AckWait,
		MaxDeliver:    -1,
		MaxAckPending: b.cfg.MaxAckPending,
	}
	if len(subjects) == 1 {
		cc.FilterSubject = subjects[0]
	} else {
		cc.FilterSubjects = subjects
	}
	var cons jetstream.Consumer
	var unsupported error
	err := retry(ctx, b.cfg.ReconnectWait, func() error {
		cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		defer cancel()
		var err error
		cons, err = b.js.CreateOrUpdateConsumer(cctx, b.cfg.Stream, cc)
		if errors.Is(err, jetstream.ErrConsumerMultipleFilterSubjectsNotSupported) {
			unsupported = err
			return nil
		}
		return err
	})
	if unsupported != nil {
		// A server older than 2.10 ignores FilterSubjects: it made (or kept) an unfiltered
		// durable that nobody will consume, whose pending count would grow with the whole
		// stream. Remove it; the caller falls back to one durable per subject.
		dctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		defer cancel()
		if err := b.js.DeleteConsumer(dctx, b.cfg.Stream, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			b.cfg.Logger.Warn("removing the unfiltered consumer an old server made", "consumer", name, "err", err)
		}
		return nil, unsupported
	}
	return cons, err
}

type jsSubscription struct {
	b      *JetStream
	typeOf map[string]string // subject -> event type
	p      *dispatcher
	ctx    context.Context // cancelled by Stop: interrupts the handler in progress
	cancel context.CancelFunc
	ccs    []jetstream.ConsumeContext
	once   sync.Once

	// ConsumeContext.Closed may report closed while a callback still runs (it checks the
	// subscription's validity, which Stop removes at once): Stop also waits for these.
	mu       sync.Mutex
	stopped  bool
	inflight sync.WaitGroup
}

// Stop implements Subscription.
func (s *jsSubscription) Stop() {
	s.once.Do(func() {
		for _, cc := range s.ccs {
			cc.Stop()
		}
		for _, cc := range s.ccs {
			<-cc.Closed()
		}
		s.mu.Lock()
		s.stopped = true
		s.mu.Unlock()
		s.inflight.Wait() // the callback in progress has returned
		s.cancel()
	})
}

// handle hands one delivery to the shared policy (dispatcher), which acknowledges, redelivers
// (NakWithDelay: the server counts the attempts) or dead-letters it (then Term).
func (s *jsSubscription) handle(m jetstream.Msg) {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		_ = m.Nak() // stopped: leave it to another instance, now
		return
	}
	s.inflight.Add(1)
	s.mu.Unlock()
	defer s.inflight.Done()
	attempt := 1
	if md, err := m.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	s.p.deliver(delivery{
		msg: Message{Type: s.typeOf[m.Subject()], ID: m.Headers().Get(jetstream.MsgIDHeader), Data: m.Data(),
			Attempt: attempt, Headers: messageHeaders(m.Headers())},
		source:  m.Subject(),
		ack:     m.Ack,
		retry:   m.NakWithDelay,
		term:    m.Term,
		release: m.Nak,
	})
}

// publishDeadLetter publishes consumer's dead-letter copy dl to DeadLetterSubject.
func (b *JetStream) publishDeadLetter(ctx context.Context, consumer string, dl Message) error {
	m := natsMsg(b.DeadLetterSubject(consumer, dl.Type), dl)
	m.Header.Set(jetstream.MsgIDHeader, dl.ID)
	_, err := b.js.PublishMsg(ctx, m)
	return err
}

// natsMsg is msg as a NATS message on subject, its Headers as NATS headers.
func natsMsg(subject string, msg Message) *nats.Msg {
	m := &nats.Msg{Subject: subject, Data: msg.Data}
	if len(msg.Headers) > 0 {
		m.Header = make(nats.Header, len(msg.Headers))
		for k, v := range msg.Headers {
			m.Header.Set(k, v)
		}
	}
	return m
}

// messageHeaders returns a delivered message's own headers (Message.Headers), without the
// broker's (Nats-*); nil when there are none.
func messageHeaders(h nats.Header) map[string]string {
	var out map[string]string
	for k, v := range h {
		if len(v) == 0 || strings.HasPrefix(k, "Nats-") {
			continue
		}
		if out == nil {
			out = make(map[string]string, 2)
		}
		out[k] = v[0]
	}
	return out
}
