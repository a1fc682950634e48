// Package pipeline declares the stages a request passes through the gateway as one ordered,
// named table, from the first net/http middleware to grpc-go's retries on the upstream
// connection. The factory (gateway/server) builds the table once per configuration snapshot and
// wires every layer from it: the edge middleware, the route middleware that runs once
// grpc-gateway matched the route, the gRPC client interceptors of the upstream connections and
// the service config below them. Nothing else decides an order.
//
// A Pipeline is a plain value: its String method prints the table, and a test (or `gateway
// routes`) can read it without running a request.
package pipeline

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"google.golang.org/grpc"

	"github.com/acme/shopgate/gateway/upstream"
)

// Layer says where a stage runs. Layers run in their declared order: every Edge stage before
// the Router, every Route stage after it, then the Handler, the Client stages and the Transport.
type Layer int

// The layers, outermost first.
const (
	// Edge stages are net/http middleware that every request passes before routing.
	Edge Layer = iota
	// Router is grpc-gateway's ServeMux: it matches method and path, or answers 404/405.
	Router
	// Route stages are net/http middleware that run once a route matched
	// (runtime.WithMiddlewares); the request's policy.Route is in its context.
	Route
	// Handler is the generated grpc-gateway handler: it decodes the body and calls the upstream.
	Handler
	// Client stages are gRPC client interceptors of the upstream connections, first outermost.
	Client
	// Transport stages are grpc-go's own, set through the connections' service config; they run
	// below the interceptors (a retried call passes the Client stages once).
	Transport
)

// String returns the layer's name as the table prints it.
func (l Layer) String() string {
	switch l {
	case Edge:
		return "edge"
	case Router:
		return "router"
	case Route:
		return "route"
	case Handler:
		return "handler"
	case Client:
		return "client"
	case Transport:
		return "transport"
	}
	return fmt.Sprintf("layer(%d)", int(l))
}

// Stage is one named step of the pipeline. Which fields it sets depends on its layer: HTTP for
// Edge and Route stages; Unary and/or Stream for Client stages (a nil one passes that kind of
// call untouched); MethodConfigs and Throttling for Transport stages. Router and Handler stages
// carry nothing: the factory builds them around the table.
type Stage struct {
	// Name is short and unique in the pipeline ("rate-limit").
	Name string
	// Layer is where the stage runs.
	Layer Layer
	// Doc says in one line what the stage does and how it refuses a request.
	Doc string
	// HTTP wraps the next handler (Edge and Route stages).
	HTTP func(http.Handler) http.Handler
	// Unary and Stream intercept upstream calls (Client stages). A Unary calls its invoker, if
	// at all, before it returns: gateway/upstream reuses the invokers of its chain.
	Unary  grpc.UnaryClientInterceptor
	Stream grpc.StreamClientInterceptor
	// MethodConfigs and Throttling go into every upstream connection's service config
	// (Transport stages).
	MethodConfigs []upstream.MethodConfig
	Throttling    *upstream.RetryThrottling
}

// Pipeline is the ordered table of stages.
type Pipeline struct {
	stages []Stage
}

// New checks stages and returns them as a Pipeline: names unique and not empty, layers in
// order, exactly one Router and one Handler, and each stage carrying what its layer needs. It
// reports every problem at once.
func New(stages ...Stage) (Pipeline, error) {
	var errs []error
	seen := make(map[string]bool, len(stages))
	count := map[Layer]int{}
	for i, st := range stages {
		count[st.Layer]++
		switch {
		case st.Name == "":
			errs = append(errs, fmt.Errorf("stage %d: no name", i))
		case seen[st.Name]:
			errs = append(errs, fmt.Errorf("stage %q: named twice", st.Name))
		}
		seen[st.Name] = true
		if i > 0 && st.Layer < stages[i-1].Layer {
			errs = append(errs, fmt.Errorf("stage %q: layer %s after %s", st.Name, st.Layer, stages[i-1].Layer))
		}
		if err := st.check(); err != nil {
			errs = append(errs, fmt.Errorf("stage %q: %w", st.Name, err))
		}
	}
	if count[Router] != 1 || count[Handler] != 1 {
		errs = append(errs, fmt.Errorf("want one router and one handler stage, got %d and %d", count[Router], count[Handler]))
	}
	if err := errors.Join(errs...); err != nil {
		return Pipeline{}, fmt.Errorf("declaring the pipeline: %w", err)
	}
	return Pipeline{stages: stages}, nil
}

// check reports whether st carries what its layer runs, and nothing of another layer.
func (st Stage) check() error {
	http, client, transport := st.HTTP != nil, st.Unary != nil || st.Stream != nil, st.MethodConfigs != nil || st.Throttling != nil
	want := map[Layer][3]bool{
		Edge: {true, false, false}, Route: {true, false, false},
		Router: {false, false, false}, Handler: {false, false, false},
		Client: {false, true, false}, Transport: {false, false, true},
	}
	w, ok := want[st.Layer]
	if !ok {
		return fmt.Errorf("unknown layer %d", int(st.Layer))
	}
	if http != w[0] || client != w[1] || transport != w[2] {
		return fmt.Errorf("a %s stage needs %s", st.Layer, needs(st.Layer))
	}
	return nil
}

func needs(l Layer) string {
	switch l {
	case Edge, Route:
		return "HTTP and nothing else"
	case Client:
		return "Unary or Stream and nothing else"
	case Transport:
		return "service config entries only"
	}
	return "no function (the factory builds it)"
}

// Stages returns the table, in order. The slice is shared: do not modify it.
func (p Pipeline) Stages() []Stage { return p.stages }

// Names returns the stage names, in order.
func (p Pipeline) Names() []string {
	out := make([]string, len(p.stages))
	for i, st := range p.stages {
		out[i] = st.Name
	}
	return out
}

// String prints the table, one stage a line: position, layer, name and doc.
func (p Pipeline) String() string {
	var b strings.Builder
	for i, st := range p.stages {
		fmt.Fprintf(&b, "%-3s %-9s %-17s %s\n", strconv.Itoa(i+1)+".", st.Layer, st.Name, st.Doc)
	}
	return b.String()
}

// Trace, when not nil, is called with a stage's name each time a request or call enters it.
// Tests use it to check that what runs is what the table says.
type Trace func(stage string)

// HTTP wraps h in the HTTP stages of layer (Edge or Route), the first outermost.
func (p Pipeline) HTTP(layer Layer, h http.Handler, trace Trace) http.Handler {
	for i := len(p.stages) - 1; i >= 0; i-- {
		st := p.stages[i]
		if st.Layer != layer {
			continue
		}
		h = st.HTTP(h)
		if trace != nil {
			h = traced(trace, st.Name, h)
		}
	}
	return h
}

// Traced returns h preceded by trace(name) when trace is set (the Router and Handler stages,
// which the factory builds itself).
func Traced(trace Trace, name string, h http.Handler) http.Handler {
	if trace == nil {
		return h
	}
	return traced(trace, name, h)
}

func traced(trace Trace, name string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		trace(name)
		next.ServeHTTP(w, r)
	})
}
