package events_test

import (
	"context"
	"errors"
	"maps"
	"sync"
	"testing"
	"time"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	"github.com/acme/shopgate/services/events"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// recorder is a service with two handlers that records what it was called with.
type recorder struct {
	mu     sync.Mutex
	calls  []string                     // "<type>:<event id>:<order id>"
	traces map[string]map[string]string // event id -> events.TraceContextFrom(ctx)
}

func (r *recorder) add(ctx context.Context, kind, eventID, orderID string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, kind+":"+eventID+":"+orderID)
	if r.traces == nil {
		r.traces = make(map[string]map[string]string)
	}
	r.traces[eventID] = events.TraceContextFrom(ctx)
	return nil
}

func (r *recorder) HandleOrderCreated(ctx context.Context, eventID string, ev *eventsv1.OrderCreated) error {
	return r.add(ctx, "created", eventID, ev.GetOrderId())
}

func (r *recorder) HandleOrderCancelled(ctx context.Context, eventID string, ev *eventsv1.OrderCancelled) error {
	return r.add(ctx, "cancelled", eventID, ev.GetOrderId())
}

func (r *recorder) snapshot() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

// trace returns the trace context the handler of eventID found in its ctx.
func (r *recorder) trace(eventID string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.traces[eventID]
}

// traced is a W3C trace context as CreateOrder records it.
var traced = map[string]string{
	"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	"tracestate":  "acme=1",
}

func (r *recorder) consumer() events.Consumer {
	return events.Consumer{Name: "inventory", Routes: []events.Route{
		events.On(r.HandleOrderCreated),
		events.On(r.HandleOrderCancelled),
	}}
}

func TestConsumerRoutesEachTypeToItsHandler(t *testing.T) {
	for _, bc := range brokers() {
		t.Run(bc.name, func(t *testing.T) {
			b := bc.open(t, fastRetries)
			rec := &recorder{}
			sub, err := events.Consume(ctxTimeout(t, 10*time.Second), b, rec.consumer())
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Stop()
			created, err := events.NewEnvelope("order", "o1", &eventsv1.OrderCreated{OrderId: "o1"}, time.Now(), traced)
			if err != nil {
				t.Fatal(err)
			}
			cancelled, err := events.NewEnvelope("order", "o1", &eventsv1.OrderCancelled{OrderId: "o1", Reason: "r"}, time.Now(), nil)
			if err != nil {
				t.Fatal(err)
			}
			// Not routed: never delivered to this consumer.
			confirmed, err := events.NewEnvelope("order", "o1", &eventsv1.OrderConfirmed{OrderId: "o1"}, time.Now(), nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, env := range []*eventsv1.Envelope{created, confirmed, cancelled} {
				publishEnvelope(t, b, env, env.GetEventId())
			}
			want := map[string]bool{
				"created:" + created.GetEventId() + ":o1":     true,
				"cancelled:" + cancelled.GetEventId() + ":o1": true,
			}
			eventually(t, 10*time.Second, "not every routed event arrived", func() bool { return len(rec.snapshot()) >= 2 })
			sub.Stop()
			got := rec.snapshot()
			if len(got) != 2 || !want[got[0]] || !want[got[1]] {
				t.Fatalf("handlers called with %v, want %v", got, want)
			}
			if tc := rec.trace(created.GetEventId()); !maps.Equal(tc, traced) {
				t.Fatalf("OrderCreated handled with trace context %v, want %v", tc, traced)
			}
			if tc := rec.trace(cancelled.GetEventId()); tc != nil {
				t.Fatalf("OrderCancelled without trace context handled with %v", tc)
			}
		})
	}
}

// TestOnPutsTheTraceContextInTheHandlersContext: the handler's ctx carries the envelope's trace
// context, replacing whatever the caller's ctx carried, and TraceContextFrom hands out copies.
func TestOnPutsTheTraceContextInTheHandlersContext(t *testing.T) {
	if tc := events.TraceContextFrom(context.Background()); tc != nil {
		t.Fatalf("trace context of a bare context: %v", tc)
	}
	outer := events.WithTraceContext(context.Background(), map[string]string{"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"})
	for _, tt := range []struct {
		name string
		tc   map[string]string
	}{
		{"envelope with a trace context", traced},
		{"envelope without one", nil},
		{"envelope with an empty one", map[string]string{}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rec := &recorder{}
			h := rec.consumer().Handler()
			env, err := events.NewEnvelope("order", "o1", &eventsv1.OrderCreated{OrderId: "o1"}, time.Now(), tt.tc)
			if err != nil {
				t.Fatal(err)
			}
			data, err := proto.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			if err := h(outer, events.Message{Type: orderCreated, ID: env.GetEventId(), Data: data}); err != nil {
				t.Fatal(err)
			}
			got := rec.trace(env.GetEventId())
			if len(tt.tc) == 0 && got != nil || !maps.Equal(got, tt.tc) {
				t.Fatalf("handler's trace context %v, want %v", got, tt.tc)
			}
		})
	}
	t.Run("copies", func(t *testing.T) {
		in := maps.Clone(traced)
		ctx := events.WithTraceContext(context.Background(), in)
		in["traceparent"] = "changed by the caller"
		out := events.TraceContextFrom(ctx)
		out["tracestate"] = "changed by a reader"
		if got := events.TraceContextFrom(ctx); !maps.Equal(got, traced) {
			t.Fatalf("trace context %v after changes to the maps given and returned, want %v", got, traced)
		}
	})
}

func TestConsumerHandlerRejectsBadMessagesPermanently(t *testing.T) {
	rec := &recorder{}
	h := rec.consumer().Handler()
	wrongPayload, err := anypb.New(&eventsv1.StockReserved{OrderId: "o1"})
	if err != nil {
		t.Fatal(err)
	}
	mismatched, err := proto.Marshal(&eventsv1.Envelope{EventId: "e1", Type: "shop.events.v1.OrderCreated", Payload: wrongPayload})
	if err != nil {
		t.Fatal(err)
	}
	unrouted, err := proto.Marshal(&eventsv1.Envelope{EventId: "e2", Type: "shop.events.v1.StockReserved", Payload: wrongPayload})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
	}{
		{"not protobuf", []byte{0xff, 0xff, 0xff}},
		{"payload of another type", mismatched},
		{"type without a route", unrouted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := h(context.Background(), events.Message{Type: orderCreated, ID: "x", Data: tt.data})
			if !errors.Is(err, events.ErrPermanent) {
				t.Fatalf("error %v, want ErrPermanent", err)
			}
		})
	}
	if calls := rec.snapshot(); len(calls) != 0 {
		t.Fatalf("handlers called with %v", calls)
	}
}

// FuzzConsumerHandler feeds arbitrary bytes to the decoding side of a consumer: it must never
// panic, and anything it cannot decode fails permanently rather than being retried forever.
func FuzzConsumerHandler(f *testing.F) {
	good, err := events.NewEnvelope("order", "o1", &eventsv1.OrderCreated{OrderId: "o1"}, time.Unix(0, 0), nil)
	if err != nil {
		f.Fatal(err)
	}
	data, err := proto.Marshal(good)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(data)
	f.Add([]byte{})
	f.Add([]byte{0x0a, 0x02, 'e', '1'})
	f.Add(data[:len(data)/2])
	f.Fuzz(func(t *testing.T, data []byte) {
		rec := &recorder{}
		err := rec.consumer().Handler()(context.Background(), events.Message{Data: data})
		if err != nil && !errors.Is(err, events.ErrPermanent) {
			t.Fatalf("decoding failure not permanent: %v", err)
		}
		if err == nil && len(rec.snapshot()) != 1 {
			t.Fatalf("accepted without calling a handler")
		}
	})
}
