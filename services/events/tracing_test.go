package events_test

import (
	"context"
	"database/sql"
	"testing"
	"time"

	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/services/events"
)

// commitTraced appends an OrderCreated recording tc (nil: none) to db's outbox.
func commitTraced(t *testing.T, db *sql.DB, orderID string, tc map[string]string) *eventsv1.Envelope {
	t.Helper()
	env, err := events.NewEnvelope("order", orderID, &eventsv1.OrderCreated{OrderId: orderID}, time.Now(), tc)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := events.Append(context.Background(), tx, env); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	return env
}

// TestEventSpans: with a tracer provider, the relay publishes each event in a producer span
// whose parent is the trace context its envelope recorded, the span's context travels in the
// NATS message headers, and the consumer handles it in a consumer span, the producer span's
// child, which the handler's ctx carries (TraceContextFrom: what its own events record).
// Without one, no header is sent and no span made.
func TestEventSpans(t *testing.T) {
	for _, bc := range brokers() {
		t.Run(bc.name, func(t *testing.T) {
			for _, on := range []bool{true, false} {
				t.Run(map[bool]string{true: "tracing on", false: "tracing off"}[on], func(t *testing.T) {
					b := bc.open(t, events.Config{})
					rec := tracetest.NewSpanRecorder()
					tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec), sdktrace.WithSampler(sdktrace.AlwaysSample()))
					t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
					var provider trace.TracerProvider
					if on {
						provider = tp
					}
					db := openDB(t)
					env := commitTraced(t, db, "o-traced", traced)
					relay, err := events.NewRelay(db, b, events.RelayConfig{TracerProvider: provider})
					if err != nil {
						t.Fatal(err)
					}
					if n, err := relay.PublishPending(ctxTimeout(t, 10*time.Second)); n != 1 || err != nil {
						t.Fatalf("published %d, %v", n, err)
					}

					r := &recorder{}
					headers := make(chan map[string]string, 1)
					c := r.consumer()
					c.TracerProvider = provider
					inner := c.Handler()
					sub, err := b.Subscribe(ctxTimeout(t, 10*time.Second), "inventory", c.Types(), func(ctx context.Context, msg events.Message) error {
						select {
						case headers <- msg.Headers:
						default:
						}
						return inner(ctx, msg)
					})
					if err != nil {
						t.Fatal(err)
					}
					defer sub.Stop()
					eventually(t, 10*time.Second, "the event handled", func() bool { return len(r.snapshot()) == 1 })
					h := <-headers
					handled := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(r.trace(env.GetEventId()))))

					if !on {
						if len(h) != 0 || len(rec.Ended()) != 0 {
							t.Fatalf("tracing off: headers %v, spans %v", h, rec.Ended())
						}
						if got := r.trace(env.GetEventId()); got["traceparent"] != traced["traceparent"] {
							t.Fatalf("tracing off: the handler's trace context %v, want the envelope's %v", got, traced)
						}
						return
					}
					eventually(t, 5*time.Second, "both spans ended", func() bool { return len(rec.Ended()) == 2 })
					var producer, consumer sdktrace.ReadOnlySpan
					for _, s := range rec.Ended() {
						switch s.SpanKind() {
						case trace.SpanKindProducer:
							producer = s
						case trace.SpanKindConsumer:
							consumer = s
						}
					}
					if producer == nil || consumer == nil {
						t.Fatalf("spans %v: want a producer and a consumer", rec.Ended())
					}
					if got := producer.Parent(); got.TraceID().String() != "4bf92f3577b34da6a3ce929d0e0e4736" || got.SpanID().String() != "00f067aa0ba902b7" {
						t.Errorf("producer's parent %v, want the envelope's trace context", got)
					}
					if hp := trace.SpanContextFromContext(propagation.TraceContext{}.Extract(context.Background(), propagation.MapCarrier(h))); hp.SpanID() != producer.SpanContext().SpanID() {
						t.Errorf("message headers %v, want the producer span %v", h, producer.SpanContext().SpanID())
					}
					if consumer.Parent().SpanID() != producer.SpanContext().SpanID() || consumer.SpanContext().TraceID() != producer.SpanContext().TraceID() {
						t.Errorf("consumer's parent %v, want the producer span", consumer.Parent())
					}
					if handled.SpanID() != consumer.SpanContext().SpanID() {
						t.Errorf("the handler's trace context names span %v, want the consumer span %v", handled.SpanID(), consumer.SpanContext().SpanID())
					}
					for _, s := range []sdktrace.ReadOnlySpan{producer, consumer} {
						attrs := map[string]string{}
						for _, a := range s.Attributes() {
							attrs[string(a.Key)] = a.Value.Emit()
						}
						if attrs["messaging.system"] != "nats" || attrs["messaging.message.id"] != env.GetEventId() ||
							attrs["messaging.destination.name"] != events.Subject(env) {
							t.Errorf("%s span attributes %v", s.SpanKind(), attrs)
						}
					}
				})
			}
		})
	}
}
