package metrics_test

import (
	"context"
	"io"
	"testing"

	"github.com/acme/shopgate/gateway/metrics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestUpstream runs calls through the unary interceptor and checks go-grpc-middleware's names
// and labels, and that a second gateway on the same registry (a reload, or cmd/shop's services)
// counts on in the same series.
func TestUpstream(t *testing.T) {
	reg := prometheus.NewRegistry()
	u, err := metrics.NewUpstream(reg)
	if err != nil {
		t.Fatal(err)
	}
	again, err := metrics.NewUpstream(reg)
	if err != nil {
		t.Fatalf("a second NewUpstream on the same registry: %v", err)
	}
	tests := []struct {
		via  *metrics.Upstream
		err  error
		code string
	}{
		{u, nil, "OK"},
		{again, nil, "OK"},
		{u, status.Error(codes.Unavailable, "down"), "Unavailable"},
	}
	for _, tt := range tests {
		invoke := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return tt.err }
		_ = tt.via.Unary()(context.Background(), "/shop.order.v1.OrderService/GetOrder", nil, nil, nil, invoke)
	}
	for _, tt := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"grpc_client_started_total", nil, 3},
		{"grpc_client_handled_total", []string{"OK"}, 2},
		{"grpc_client_handled_total", []string{"Unavailable"}, 1},
	} {
		got := 0.0
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() != tt.name {
				continue
			}
			for _, m := range mf.GetMetric() {
				l := map[string]string{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				if l["grpc_service"] != "shop.order.v1.OrderService" || l["grpc_method"] != "GetOrder" || l["grpc_type"] != "unary" {
					t.Errorf("%s labels %v", tt.name, l)
				}
				if len(tt.labels) > 0 && l["grpc_code"] != tt.labels[0] {
					continue
				}
				got += m.GetCounter().GetValue()
			}
		}
		if got != tt.want {
			t.Errorf("%s%v = %v, want %v", tt.name, tt.labels, got, tt.want)
		}
	}
	if n, err := testutil.GatherAndCount(reg, "grpc_client_handling_seconds"); err != nil || n != 1 {
		t.Errorf("grpc_client_handling_seconds: %d series (%v), want 1", n, err)
	}
}

// TestUpstreamStreams checks the streams' grpc_type, their messages, and when they count as
// handled: a server stream at its io.EOF (OK) or first error, a stream that failed to start at
// once, a context error under its own code.
func TestUpstreamStreams(t *testing.T) {
	tests := []struct {
		name         string
		desc         grpc.StreamDesc
		startErr     error
		recv         []error // what each RecvMsg returns
		wantType     string
		wantCode     string
		wantReceived float64
	}{
		{"server stream to its end", grpc.StreamDesc{ServerStreams: true}, nil, []error{nil, nil, io.EOF}, "server_stream", "OK", 2},
		{"server stream failing", grpc.StreamDesc{ServerStreams: true}, nil, []error{nil, status.Error(codes.Unavailable, "gone")}, "server_stream", "Unavailable", 1},
		{"bidi stream cancelled", grpc.StreamDesc{ServerStreams: true, ClientStreams: true}, nil, []error{context.Canceled}, "bidi_stream", "Canceled", 0},
		{"client stream", grpc.StreamDesc{ClientStreams: true}, nil, []error{nil}, "client_stream", "OK", 1},
		{"refused at start", grpc.StreamDesc{ServerStreams: true}, status.Error(codes.ResourceExhausted, "full"), nil, "server_stream", "ResourceExhausted", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := prometheus.NewRegistry()
			u, err := metrics.NewUpstream(reg)
			if err != nil {
				t.Fatal(err)
			}
			fake := &fakeStream{recv: tt.recv}
			streamer := func(context.Context, *grpc.StreamDesc, *grpc.ClientConn, string, ...grpc.CallOption) (grpc.ClientStream, error) {
				if tt.startErr != nil {
					return nil, tt.startErr
				}
				return fake, nil
			}
			cs, err := u.Stream()(context.Background(), &tt.desc, nil, "/shop.order.v1.OrderService/WatchOrder", streamer)
			if err == nil {
				_ = cs.SendMsg(nil)
				for range tt.recv {
					_ = cs.RecvMsg(nil)
				}
				_ = cs.RecvMsg(nil) // once more after the end: counted once
			}
			labels := prometheus.Labels{"grpc_type": tt.wantType, "grpc_service": "shop.order.v1.OrderService", "grpc_method": "WatchOrder"}
			handled := prometheus.Labels{"grpc_code": tt.wantCode}
			for k, v := range labels {
				handled[k] = v
			}
			for name, want := range map[string]float64{"grpc_client_started_total": 1, "grpc_client_msg_received_total": tt.wantReceived} {
				if got := counterValue(t, reg, name, labels); got != want {
					t.Errorf("%s = %v, want %v", name, got, want)
				}
			}
			if got := counterValue(t, reg, "grpc_client_handled_total", handled); got != 1 {
				t.Errorf("grpc_client_handled_total%v = %v, want 1", handled, got)
			}
		})
	}
}

// fakeStream is a ClientStream whose RecvMsg answers recv in turn, then io.EOF.
type fakeStream struct {
	grpc.ClientStream
	recv []error
}

func (f *fakeStream) SendMsg(any) error { return nil }
func (f *fakeStream) RecvMsg(any) error {
	if len(f.recv) == 0 {
		return io.EOF
	}
	err := f.recv[0]
	f.recv = f.recv[1:]
	return err
}

// counterValue is the value of the counter name with exactly labels, 0 when absent.
func counterValue(t *testing.T, reg *prometheus.Registry, name string, labels prometheus.Labels) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(labels) {
				continue
			}
			for _, lp := range m.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

// TestUpstreamUnaryDoesNotAllocate: once a method's series are resolved, a call costs no
// allocation (go-grpc-middleware's interceptor allocated its reporter and label slices).
func TestUpstreamUnaryDoesNotAllocate(t *testing.T) {
	u, err := metrics.NewUpstream(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	invoke := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ic := u.Unary()
	ctx := context.Background()
	call := func() { _ = ic(ctx, "/shop.inventory.v1.InventoryService/GetItem", nil, nil, nil, invoke) }
	call()
	if n := testing.AllocsPerRun(100, call); n != 0 {
		t.Errorf("%v allocations per call, want 0", n)
	}
}

// BenchmarkUpstreamUnary is what the upstream-metrics stage adds to a unary call:
//
//	go test -run '^$' -bench UpstreamUnary -benchmem ./gateway/metrics
func BenchmarkUpstreamUnary(b *testing.B) {
	u, err := metrics.NewUpstream(prometheus.NewRegistry())
	if err != nil {
		b.Fatal(err)
	}
	invoke := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	ic := u.Unary()
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		_ = ic(ctx, "/shop.inventory.v1.InventoryService/GetItem", nil, nil, nil, invoke)
	}
}
