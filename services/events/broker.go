package events

import (
	"context"
	"errors"
	"strings"
)

// Broker carries events between services. Implementations: the NATS JetStream broker returned by
// Dial (an external NATS server or cluster) and by (*Embedded).Connect (a server in this process),
// and the Kafka broker returned by DialKafka. What is not broker-specific lives above it: the
// retry and dead-letter policy (dispatcher: Config.MaxAttempts, BackOff, HandlerTimeout,
// ErrPermanent, the dead-letter copy and its headers, metrics and logs), the attempt count and
// the partition key (Message). An adapter delivers each message to the dispatcher with its
// attempt number and the callbacks that settle it on its broker, registers its URL scheme
// (registerScheme) and tells the spans its messaging system (describer).
type Broker interface {
	// Publish stores one message durably and returns once the broker acknowledged it. msgID is the
	// deduplication id (the event id): publishing the same msgID again within the broker's
	// deduplication window stores nothing new.
	Publish(ctx context.Context, msg Message) error
	// Subscribe delivers the messages of the given event types to h through the durable consumer
	// named consumer, which every instance of one service shares (each message goes to one of
	// them). A message is acknowledged only after h returned nil; on an error it is redelivered
	// with backoff, and after the configured number of attempts it goes to the dead-letter
	// destination (subject or topic).
	// Stop the returned Subscription before closing the broker.
	Subscribe(ctx context.Context, consumer string, types []string, h Handler) (Subscription, error)
	// Close drains and closes the connection. It does not stop an embedded server.
	Close() error
}

// Message is one event on the broker.
type Message struct {
	// Type is the event type, the payload's full message name ("shop.events.v1.OrderCreated");
	// the broker derives the subject from it.
	Type string
	// ID is the deduplication id, the event id.
	ID string
	// Key is the partition key, the order id: a partitioned broker keeps the events of one key
	// in order. "": none.
	Key string
	// Data is the encoded envelope.
	Data []byte
	// Headers travel beside Data (NATS message headers): with tracing on, the W3C trace
	// context of the message's producer span ("traceparent", "tracestate"). nil: none.
	Headers map[string]string
	// Attempt counts deliveries to this consumer, from 1 (set on delivery only).
	Attempt int
}

// Handler handles one delivered message. It returns nil once the message's effect is committed.
type Handler func(ctx context.Context, msg Message) error

// Subscription is a running consumer.
type Subscription interface {
	// Stop stops fetching, waits for the handler in progress and returns. Idempotent.
	Stop()
}

// ErrPermanent marks a handler error that no retry can cure (an undecodable message): the
// message goes to the dead-letter subject at once. Wrap it: fmt.Errorf("...: %w", ErrPermanent).
var ErrPermanent = errors.New("permanent failure")

// batchPublisher is a Broker that publishes several messages in one go (Kafka: pipelined
// produce requests instead of one round trip per message); the relay uses it when there.
type batchPublisher interface {
	// PublishBatch publishes msgs, keeping the order of each key, and returns the outcome of
	// each (nil: stored and acknowledged). With a failure, every later message of the same
	// key fails too, so that a prefix of each key's messages is what was stored.
	PublishBatch(ctx context.Context, msgs []Message) []error
}

// dialer connects to the broker at a URL of its scheme.
type dialer func(ctx context.Context, url string, cfg Config) (Broker, error)

// schemes maps a -broker-url scheme ("kafka") to the adapter that dials it; a URL of another
// scheme (nats://, tls://, ws://, or none) goes to NATS JetStream (Dial).
var schemes = map[string]dialer{}

// registerScheme makes Start dial URLs of scheme with d; an adapter file calls it from init.
func registerScheme(scheme string, d dialer) { schemes[scheme] = d }

// dialURL connects to the broker at url: the adapter registered for its scheme, else JetStream.
func dialURL(ctx context.Context, url string, cfg Config) (Broker, error) {
	if scheme, _, ok := strings.Cut(url, "://"); ok {
		if d, ok := schemes[strings.ToLower(scheme)]; ok {
			return d(ctx, url, cfg)
		}
	}
	return nilIfFailed(Dial(ctx, url, cfg))
}

// nilIfFailed returns b as a Broker, a nil interface (not a nil *T) when err is set.
func nilIfFailed[T Broker](b T, err error) (Broker, error) {
	if err != nil {
		return nil, err
	}
	return b, nil
}
