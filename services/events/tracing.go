package events

import (
	"context"
	"errors"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/internal/telemetry/wire"
)

// ScopeName is the instrumentation scope of the events' spans.
const ScopeName = "github.com/acme/shopgate/services/events"

// DefaultMessagingSystem is the messaging.system of the spans: the broker is NATS JetStream.
const DefaultMessagingSystem = "nats"

// The messaging semantic conventions' attribute keys (semconv v1.26 and later).
const (
	keySystem      = attribute.Key("messaging.system")
	keyDestination = attribute.Key("messaging.destination.name")
	keyOpType      = attribute.Key("messaging.operation.type")
	keyOpName      = attribute.Key("messaging.operation.name")
	keyMessageID   = attribute.Key("messaging.message.id")
	keyConsumer    = attribute.Key("messaging.consumer.group.name")
	keyAttempt     = attribute.Key("messaging.delivery.attempt") // not in semconv: the broker's delivery count
)

// describer is what an adapter tells the spans about itself; every Broker here implements it.
type describer interface {
	// messagingSystem is the spans' messaging.system ("nats", "kafka").
	messagingSystem() string
	// destination is where events of eventType are published (a subject, a topic).
	destination(eventType string) string
}

// describe returns b's messaging system and destination function, the defaults (nats, the
// default subject) when b does not implement describer.
func describe(b Broker) (string, func(string) string) {
	if d, ok := b.(describer); ok {
		return d.messagingSystem(), d.destination
	}
	return DefaultMessagingSystem, func(t string) string { return SubjectPrefix + t }
}

// eventTracer makes the producer and consumer spans; nil means tracing off.
type eventTracer struct {
	t      trace.Tracer
	system attribute.KeyValue
}

// newEventTracer returns the tracer of tp, nil when tp is nil.
func newEventTracer(tp trace.TracerProvider, system string) *eventTracer {
	if tp == nil {
		return nil
	}
	if system == "" {
		system = DefaultMessagingSystem
	}
	return &eventTracer{t: tp.Tracer(ScopeName), system: keySystem.String(system)}
}

// startPublish starts the producer span of msg, a child of the trace context its envelope
// recorded (the request's or the causing event's span), and puts the span's context in
// msg.Headers. An envelope that does not decode gets a span without a parent.
func (t *eventTracer) startPublish(ctx context.Context, subject string, msg *Message) (context.Context, trace.Span) {
	var env eventsv1.Envelope
	if err := proto.Unmarshal(msg.Data, &env); err == nil && len(env.GetTraceContext()) > 0 {
		ctx = wire.Propagator.Extract(ctx, propagation.MapCarrier(env.GetTraceContext()))
	}
	ctx, span := t.t.Start(ctx, "publish "+subject, trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(t.system, keyDestination.String(subject), keyOpType.String("send"),
			keyOpName.String("publish"), keyMessageID.String(msg.ID)))
	headers := make(propagation.MapCarrier, 2)
	wire.Propagator.Inject(ctx, headers)
	msg.Headers = headers
	return ctx, span
}

// startProcess starts the consumer span of a delivered msg, a child of the producer span
// its headers carry, for consumer; it was read from subject (or topic).
func (t *eventTracer) startProcess(ctx context.Context, consumer, subject string, msg Message) (context.Context, trace.Span) {
	if len(msg.Headers) > 0 {
		ctx = wire.Propagator.Extract(ctx, propagation.MapCarrier(msg.Headers))
	}
	return t.t.Start(ctx, "process "+subject, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(t.system, keyDestination.String(subject), keyOpType.String("process"),
			keyOpName.String("process"), keyMessageID.String(msg.ID), keyConsumer.String(consumer),
			keyAttempt.Int(msg.Attempt)))
}

// end ends span, marking it failed with err's type (never its text, which may name internals).
func end(span trace.Span, err error) {
	if err != nil {
		span.SetStatus(codes.Error, "")
		span.SetAttributes(attribute.String("error.type", errorType(err)))
	}
	span.End()
}

// errorType classifies err for the error.type attribute.
func errorType(err error) string {
	if errors.Is(err, ErrPermanent) {
		return "permanent"
	}
	return "_OTHER"
}
