package sagatest

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/internal/telemetry/otlptest"
)

// The client's trace context of TestTraceOfAnOrder.
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
)

// TestTraceOfAnOrder runs cmd/gateway, orderd, paymentd and inventoryd with only the standard
// OTEL_* environment pointing at an in-process OTLP/HTTP receiver, creates an order through
// the gateway with a traceparent and waits for CONFIRMED. The spans of the four parts share
// the client's trace id and form one tree under the client's span: the gateway's server and
// client spans, the services' server spans, and a producer and consumer span per event of
// the saga. A request without traceparent starts a trace of its own, whose ids the gateway's
// access log carries.
func TestTraceOfAnOrder(t *testing.T) {
	rcv := otlptest.New(t)
	for k, v := range map[string]string{
		"OTEL_TRACES_EXPORTER":        "otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.HTTPEndpoint(),
		"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
		"OTEL_TRACES_SAMPLER":         "",  // the default sampler (parent-based ratio) ...
		"OTEL_TRACES_SAMPLER_ARG":     "1", // ... keeping every new trace
		"OTEL_SERVICE_NAME":           "",  // each binary's role
		"OTEL_BSP_SCHEDULE_DELAY":     "50",
	} {
		t.Setenv(k, v) // the processes inherit the environment
	}
	s := newStack(t, ownBroker(t), stackOptions{})
	g := startGateway(t, s, gatewayOptions{})
	s.putItem("sku-traced", 10, 250)
	token := g.token("alice", "customer")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	status, body, err := g.do(ctx, "POST", "/v1/orders", token,
		map[string]string{"Traceparent": "00-" + clientTraceID + "-" + clientSpanID + "-01", "Idempotency-Key": "traced-1"},
		`{"items":[{"sku":"sku-traced","quantity":1}]}`)
	if err != nil || status != 200 {
		t.Fatalf("POST /v1/orders: %d %s %v", status, body, err)
	}
	var o struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(body, &o); err != nil || o.ID == "" {
		t.Fatalf("order answer %s: %v", body, err)
	}
	if final := s.waitFinal("alice", o.ID, 20*time.Second); final.GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CONFIRMED {
		t.Fatalf("order %s ended %v", o.ID, final.GetStatus())
	}

	// The saga's last span (the order service consuming the outcome that confirmed it) may be
	// exported a batch later than the answer: wait for the whole tree.
	var problems []string
	eventually(t, 20*time.Second, "the order's trace", func() bool {
		problems = checkOrderTrace(rcv.Trace(clientTraceID))
		return len(problems) == 0
	})
	if len(problems) > 0 {
		t.Fatalf("the order's trace:\n%s\nspans:\n%s", strings.Join(problems, "\n"), describe(rcv.Trace(clientTraceID)))
	}
	t.Logf("the order's trace:\n%s", describe(rcv.Trace(clientTraceID)))

	// Without traceparent: a new trace, rooted at the gateway, in the access log.
	status, body, err = g.do(ctx, "GET", "/v1/orders/"+o.ID, token, nil, "")
	if err != nil || status != 200 {
		t.Fatalf("GET /v1/orders/%s: %d %s %v", o.ID, status, body, err)
	}
	var traceID, spanID string
	eventually(t, 10*time.Second, "the GET's access log line with its trace ids", func() bool {
		traceID, spanID = accessTrace(g.p.logs(), "/v1/orders/"+o.ID)
		return traceID != ""
	})
	if traceID == clientTraceID {
		t.Fatal("the request without traceparent joined the client's earlier trace")
	}
	eventually(t, 10*time.Second, "the GET's trace", func() bool {
		var root, server bool
		for _, sp := range rcv.Trace(traceID) {
			root = root || (sp.SpanID == spanID && sp.ParentID == "" && sp.Service == "gateway" && sp.Name == "GET /v1/orders/{id}")
			server = server || (sp.Service == "order" && sp.Kind == tracepb.Span_SPAN_KIND_SERVER)
		}
		return root && server
	})
}

// checkOrderTrace lists what the order's trace lacks: the four parts, one tree under the
// client's span, and the saga's producer and consumer spans.
func checkOrderTrace(spans []otlptest.Span) []string {
	var problems []string
	ids := map[string]bool{}
	for _, sp := range spans {
		ids[sp.SpanID] = true
	}
	services := map[string]bool{}
	kinds := map[string]int{} // service/kind
	var roots []otlptest.Span
	for _, sp := range spans {
		services[sp.Service] = true
		kinds[sp.Service+"/"+strings.TrimPrefix(sp.Kind.String(), "SPAN_KIND_")]++
		switch {
		case sp.ParentID == clientSpanID:
			roots = append(roots, sp)
		case !ids[sp.ParentID]:
			problems = append(problems, fmt.Sprintf("%s %q: parent %q is not in the trace", sp.Service, sp.Name, sp.ParentID))
		}
	}
	for _, svc := range []string{"gateway", "order", "payment", "inventory"} {
		if !services[svc] {
			problems = append(problems, "no span of "+svc)
		}
	}
	if len(roots) != 1 || roots[0].Service != "gateway" || roots[0].Name != "POST /v1/orders" ||
		roots[0].Attrs["http.route"] != "/v1/orders" || roots[0].Attrs["http.response.status_code"] != "200" {
		problems = append(problems, fmt.Sprintf("want one child of the client's span, the gateway's POST /v1/orders: %v", roots))
	}
	for _, want := range []string{"gateway/CLIENT", "order/SERVER", "order/PRODUCER", "order/CONSUMER",
		"inventory/SERVER", "inventory/CONSUMER", "inventory/PRODUCER", "payment/CONSUMER", "payment/PRODUCER"} {
		if kinds[want] == 0 {
			problems = append(problems, "no "+want+" span")
		}
	}
	for _, sp := range spans {
		if sp.Kind == tracepb.Span_SPAN_KIND_PRODUCER || sp.Kind == tracepb.Span_SPAN_KIND_CONSUMER {
			if sp.Attrs["messaging.system"] != "nats" || sp.Attrs["messaging.destination.name"] == "" || sp.Attrs["messaging.message.id"] == "" {
				problems = append(problems, fmt.Sprintf("%s %q: messaging attributes %v", sp.Service, sp.Name, sp.Attrs))
			}
		}
	}
	// OrderCreated is published by the order service and consumed by payment and inventory, each
	// consumer span a child of that producer span.
	var created string
	for _, sp := range spans {
		if sp.Service == "order" && sp.Kind == tracepb.Span_SPAN_KIND_PRODUCER && strings.HasSuffix(sp.Name, ".OrderCreated") {
			created = sp.SpanID
		}
	}
	for _, svc := range []string{"payment", "inventory"} {
		found := false
		for _, sp := range spans {
			found = found || (sp.Service == svc && sp.Kind == tracepb.Span_SPAN_KIND_CONSUMER && sp.ParentID == created && created != "")
		}
		if !found {
			problems = append(problems, svc+" has no consumer span of the OrderCreated publish")
		}
	}
	return problems
}

// describe prints spans one a line, for a failure.
func describe(spans []otlptest.Span) string {
	lines := make([]string, len(spans))
	for i, sp := range spans {
		lines[i] = fmt.Sprintf("%s %s parent=%s %s %s %q", sp.SpanID, sp.Service, sp.ParentID, sp.Kind, sp.Name, sp.Attrs["messaging.message.id"])
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// accessTrace returns the trace_id and span_id of the gateway's access log line of path.
func accessTrace(logs, path string) (traceID, spanID string) {
	for _, line := range strings.Split(logs, "\n") {
		var e struct {
			Msg     string `json:"msg"`
			Path    string `json:"path"`
			TraceID string `json:"trace_id"`
			SpanID  string `json:"span_id"`
		}
		if json.Unmarshal([]byte(line), &e) == nil && e.Msg == "request" && e.Path == path && e.TraceID != "" {
			return e.TraceID, e.SpanID
		}
	}
	return "", ""
}
