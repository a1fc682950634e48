// Package otlptest is an in-process OTLP trace receiver for tests and benchmarks: OTLP/HTTP
// (protobuf, POST /v1/traces, gzip or not) and OTLP/gRPC (the collector's TraceService), on
// free ports of 127.0.0.1. It keeps the spans it receives (or only counts them, with
// Discard), decoded from go.opentelemetry.io/proto/otlp into flat Span values.
package otlptest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// Span is one received span, flattened.
type Span struct {
	Service  string // the resource's service.name
	Name     string
	Kind     tracepb.Span_SpanKind
	TraceID  string // 32 hex digits
	SpanID   string // 16 hex digits
	ParentID string // 16 hex digits, "" for a root
	Attrs    map[string]string
	Status   tracepb.Status_StatusCode
}

// Receiver receives OTLP traces. Its zero value is not usable: call New.
type Receiver struct {
	// Discard counts the spans received without keeping them (benchmarks).
	Discard bool

	http  *httptest.Server
	grpc  *grpc.Server
	gaddr string
	count atomic.Int64
	mu    sync.Mutex
	spans []Span
}

// New starts a receiver serving OTLP/HTTP and OTLP/gRPC on two free ports of 127.0.0.1;
// t's cleanup stops both.
func New(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	r.http = httptest.NewServer(http.HandlerFunc(r.serveHTTP))
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		r.http.Close()
		t.Fatalf("otlptest: %v", err)
	}
	r.gaddr = lis.Addr().String()
	r.grpc = grpc.NewServer()
	collectortrace.RegisterTraceServiceServer(r.grpc, traceService{r: r})
	done := make(chan struct{})
	go func() { defer close(done); _ = r.grpc.Serve(lis) }()
	t.Cleanup(func() {
		r.http.Close()
		r.grpc.Stop()
		<-done
	})
	return r
}

// HTTPEndpoint is the OTEL_EXPORTER_OTLP_ENDPOINT of the OTLP/HTTP receiver ("http://host:port").
func (r *Receiver) HTTPEndpoint() string { return r.http.URL }

// GRPCEndpoint is the OTEL_EXPORTER_OTLP_ENDPOINT of the OTLP/gRPC receiver
// ("http://host:port": plaintext).
func (r *Receiver) GRPCEndpoint() string { return "http://" + r.gaddr }

// Count is how many spans arrived.
func (r *Receiver) Count() int64 { return r.count.Load() }

// Spans returns a copy of the spans kept so far.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

// Trace returns the spans kept of the trace traceID (hex).
func (r *Receiver) Trace(traceID string) []Span {
	var out []Span
	for _, s := range r.Spans() {
		if s.TraceID == traceID {
			out = append(out, s)
		}
	}
	return out
}

func (r *Receiver) serveHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || req.URL.Path != "/v1/traces" {
		http.Error(w, "want POST /v1/traces", http.StatusNotFound)
		return
	}
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	var msg collectortrace.ExportTraceServiceRequest
	if err := proto.Unmarshal(b, &msg); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.add(&msg)
	out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = io.Copy(w, bytes.NewReader(out))
}

type traceService struct {
	collectortrace.UnimplementedTraceServiceServer
	r *Receiver
}

func (s traceService) Export(_ context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	s.r.add(req)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *Receiver) add(req *collectortrace.ExportTraceServiceRequest) {
	var n int64
	var got []Span
	for _, rs := range req.GetResourceSpans() {
		service := attrs(rs.GetResource().GetAttributes())["service.name"]
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				n++
				if r.Discard {
					continue
				}
				got = append(got, Span{
					Service: service, Name: sp.GetName(), Kind: sp.GetKind(),
					TraceID: hex.EncodeToString(sp.GetTraceId()), SpanID: hex.EncodeToString(sp.GetSpanId()),
					ParentID: hex.EncodeToString(sp.GetParentSpanId()), Attrs: attrs(sp.GetAttributes()),
					Status: sp.GetStatus().GetCode(),
				})
			}
		}
	}
	r.count.Add(n)
	if len(got) > 0 {
		r.mu.Lock()
		r.spans = append(r.spans, got...)
		r.mu.Unlock()
	}
}

// attrs flattens attributes to strings (ints and bools in their text form).
func attrs(kvs []*commonpb.KeyValue) map[string]string {
	m := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch x := v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = x.StringValue
		default:
			m[kv.GetKey()] = anyString(v)
		}
	}
	return m
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_BoolValue:
		if x.BoolValue {
			return "true"
		}
		return "false"
	}
	return v.String()
}
