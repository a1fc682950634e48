package events

import (
	"context"
	"fmt"
	"sort"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/protobuf/proto"
)

// Route hands one event type to a service's handler. Build it with On.
type Route struct {
	// Type is the payload's full message name.
	Type string
	// Handle decodes the envelope's payload and calls the service.
	Handle func(ctx context.Context, env *eventsv1.Envelope) error
}

// On routes the event type of T to handle, a service method such as
// (*inventory.Service).HandleOrderCreated. The type name is read once, here, not per message.
// handle's ctx carries the envelope's trace context (none when the envelope has none): the
// handler reads it with TraceContextFrom and records it in the envelopes it writes.
func On[T any, PT interface {
	*T
	proto.Message
}](handle func(ctx context.Context, eventID string, ev PT) error) Route {
	eventType := string(PT(new(T)).ProtoReflect().Descriptor().FullName())
	return Route{
		Type: eventType,
		Handle: func(ctx context.Context, env *eventsv1.Envelope) error {
			ev := PT(new(T))
			if err := env.GetPayload().UnmarshalTo(ev); err != nil {
				return fmt.Errorf("decoding %s payload of event %s: %v: %w", eventType, env.GetEventId(), err, ErrPermanent)
			}
			return handle(WithTraceContext(ctx, env.GetTraceContext()), env.GetEventId(), ev)
		},
	}
}

// Consumer is what one service consumes: its durable consumer name and its routes.
type Consumer struct {
	// Name is the durable consumer's name, shared by the service's instances ("inventory"); the
	// service records it in its inbox.
	Name string
	// Routes maps event types to the service's handlers.
	Routes []Route
	// TracerProvider, when set, gives every delivery a consumer span (messaging conventions),
	// the child of the producer span in the message's headers; the handler's ctx carries it,
	// so the events the handler records are its children. Start sets it from
	// RuntimeConfig.TracerProvider. Default nil: no span.
	TracerProvider trace.TracerProvider
	// MessagingSystem is the spans' messaging.system. Default: the broker's, in Consume
	// ("nats", "kafka"); else DefaultMessagingSystem (nats).
	MessagingSystem string

	// destination names where a type's events are read from, in the spans; Consume sets it
	// from the broker. Default: SubjectPrefix + type.
	destination func(eventType string) string
}

// Types lists the event types the subscription consumes, sorted.
func (s Consumer) Types() []string {
	types := make([]string, len(s.Routes))
	for i, r := range s.Routes {
		types[i] = r.Type
	}
	sort.Strings(types)
	return types
}

// Handler returns the Broker handler that decodes a message's envelope and calls the route of
// its type. An undecodable message fails permanently (it goes to the dead-letter subject).
func (s Consumer) Handler() Handler {
	routes := make(map[string]func(context.Context, *eventsv1.Envelope) error, len(s.Routes))
	for _, r := range s.Routes {
		routes[r.Type] = r.Handle
	}
	handle := func(ctx context.Context, msg Message) error {
		env := &eventsv1.Envelope{}
		if err := proto.Unmarshal(msg.Data, env); err != nil {
			return fmt.Errorf("decoding envelope %s: %v: %w", msg.ID, err, ErrPermanent)
		}
		route, ok := routes[env.GetType()]
		if !ok {
			return fmt.Errorf("no route for event type %q: %w", env.GetType(), ErrPermanent)
		}
		return route(ctx, env)
	}
	tracer := newEventTracer(s.TracerProvider, s.MessagingSystem)
	if tracer == nil {
		return handle
	}
	dest := s.destination
	if dest == nil {
		dest = func(t string) string { return SubjectPrefix + t }
	}
	return func(ctx context.Context, msg Message) (err error) {
		ctx, span := tracer.startProcess(ctx, s.Name, dest(msg.Type), msg)
		defer func() { end(span, err) }()
		return handle(ctx, msg)
	}
}

// Consume subscribes c on broker: the service's handlers receive its events until the returned
// Subscription is stopped.
func Consume(ctx context.Context, broker Broker, c Consumer) (Subscription, error) {
	if c.Name == "" || len(c.Routes) == 0 {
		return nil, fmt.Errorf("consuming: consumer %q has no name or no routes", c.Name)
	}
	system, dest := describe(broker)
	if c.MessagingSystem == "" {
		c.MessagingSystem = system
	}
	c.destination = dest
	return broker.Subscribe(ctx, c.Name, c.Types(), c.Handler())
}
