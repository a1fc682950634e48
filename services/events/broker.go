package events

import (
	"context"
	"errors"
)

// Broker carries events between services. Implementations: the NATS JetStream broker returned by
// Dial (an external NATS server or cluster) and by (*Embedded).Connect (a server in this process).
type Broker interface {
	// Publish stores one message durably and returns once the broker acknowledged it. msgID is the
	// deduplication id (the event id): publishing the same msgID again within the broker's
	// deduplication window stores nothing new.
	Publish(ctx context.Context, msg Message) error
	// Subscribe delivers the messages of the given event types to h through the durable consumer
	// named consumer, which every instance of one service shares (each message goes to one of
	// them). A message is acknowledged only after h returned nil; on an error it is redelivered
	// with backoff, and after the configured number of attempts it goes to the dead-letter subject.
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
