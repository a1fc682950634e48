package grpcserver_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/services/grpcserver"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// syncBuffer is a log sink safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// panicky is a health server whose Check panics for the service "boom".
type panicky struct {
	healthpb.UnimplementedHealthServer
}

func (panicky) Check(_ context.Context, req *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	if req.GetService() == "boom" {
		panic("kaboom: secret detail")
	}
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// Watch panics, for every service.
func (panicky) Watch(*healthpb.HealthCheckRequest, grpc.ServerStreamingServer[healthpb.HealthCheckResponse]) error {
	panic("kaboom: streamed secret")
}

func start(t *testing.T, opts grpcserver.Options, register func(*grpc.Server)) (*grpc.Server, *grpc.ClientConn) {
	t.Helper()
	lis := bufconn.Listen(1 << 20)
	srv := grpcserver.New(opts)
	if register != nil {
		register(srv)
	}
	go func() { _ = srv.Serve(lis) }()
	conn, err := grpc.NewClient("passthrough:///buf",
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(); srv.Stop() })
	return srv, conn
}

func TestHealthAndLogging(t *testing.T) {
	logs := &syncBuffer{}
	hs := health.NewServer()
	srv, conn := start(t, grpcserver.Options{
		Logger:   slog.New(slog.NewJSONHandler(logs, nil)),
		Services: []string{"shop.test.v1.TestService"},
		Health:   hs,
	}, nil)
	client := healthpb.NewHealthClient(conn)
	tests := []struct {
		service  string
		wantCode codes.Code
		want     healthpb.HealthCheckResponse_ServingStatus
	}{
		{"", codes.OK, healthpb.HealthCheckResponse_SERVING},
		{"shop.test.v1.TestService", codes.OK, healthpb.HealthCheckResponse_SERVING},
		{"shop.unknown.v1.Nope", codes.NotFound, 0},
	}
	for _, tc := range tests {
		t.Run("check "+tc.service, func(t *testing.T) {
			resp, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: tc.service})
			if status.Code(err) != tc.wantCode || resp.GetStatus() != tc.want {
				t.Fatalf("Check(%q) = %v, %v", tc.service, resp.GetStatus(), err)
			}
		})
	}
	var line map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if line["msg"] == "rpc" && line["code"] == "NotFound" {
			break
		}
		line = nil
	}
	if line == nil || line["method"] != "/grpc.health.v1.Health/Check" || line["duration"] == nil {
		t.Fatalf("no rpc log line with method, code and duration in %s", logs.String())
	}
	if strings.Contains(logs.String(), `"code":"OK"`) {
		t.Fatalf("successful health checks logged at info: %s", logs.String())
	}
	t.Run("stop flips health and drains", func(t *testing.T) {
		grpcserver.Stop(srv, hs, time.Second)
		resp, err := hs.Check(context.Background(), &healthpb.HealthCheckRequest{Service: "shop.test.v1.TestService"})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("after Stop: %v %v", resp.GetStatus(), err)
		}
	})
}

func TestRecovery(t *testing.T) {
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	m, err := grpcserver.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := grpcserver.NewMetrics(reg); err != nil {
		t.Fatalf("second server on the same registry: %v", err)
	}
	_, conn := start(t, grpcserver.Options{Logger: slog.New(slog.NewJSONHandler(logs, nil)), DisableReflection: true, Metrics: m},
		func(s *grpc.Server) {
			// A second health registration is refused, so serve the panicking one under another name
			// (its generated handler still reports the full method as grpc.health.v1.Health/Check).
			desc := healthpb.Health_ServiceDesc
			desc.ServiceName = "test.Panicky"
			s.RegisterService(&desc, panicky{})
		})
	err = conn.Invoke(context.Background(), "/test.Panicky/Check", &healthpb.HealthCheckRequest{Service: "boom"}, &healthpb.HealthCheckResponse{})
	st, _ := status.FromError(err)
	if st.Code() != codes.Internal || strings.Contains(st.Message(), "secret") {
		t.Fatalf("panic surfaced as %v %q", st.Code(), st.Message())
	}
	if !strings.Contains(logs.String(), "kaboom: secret detail") || !strings.Contains(logs.String(), `"code":"Internal"`) ||
		!strings.Contains(logs.String(), `"method":"/test.Panicky/Check"`) {
		t.Fatalf("panic not logged as INTERNAL: %s", logs.String())
	}
	if err := conn.Invoke(context.Background(), "/test.Panicky/Check", &healthpb.HealthCheckRequest{}, &healthpb.HealthCheckResponse{}); err != nil {
		t.Fatal(err)
	}
	stream, err := conn.NewStream(context.Background(), &grpc.StreamDesc{ServerStreams: true}, "/test.Panicky/Watch")
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.SendMsg(&healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	err = stream.RecvMsg(&healthpb.HealthCheckResponse{})
	if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "secret") {
		t.Fatalf("stream panic surfaced as %v %q", st.Code(), st.Message())
	}
	if !strings.Contains(logs.String(), "kaboom: streamed secret") || !strings.Contains(logs.String(), `"method":"/test.Panicky/Watch"`) {
		t.Fatalf("stream panic not logged: %s", logs.String())
	}
	want := `
# HELP grpc_server_handled_total Total number of RPCs completed on the server, regardless of success or failure.
# TYPE grpc_server_handled_total counter
grpc_server_handled_total{grpc_code="Internal",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 1
grpc_server_handled_total{grpc_code="OK",grpc_method="Check",grpc_service="grpc.health.v1.Health",grpc_type="unary"} 1
grpc_server_handled_total{grpc_code="Internal",grpc_method="Watch",grpc_service="test.Panicky",grpc_type="server_stream"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "grpc_server_handled_total"); err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "grpc_server_handling_seconds"); n != 2 {
		t.Fatalf("%d duration series, want 2", n)
	}
}

func TestFieldViolations(t *testing.T) {
	tests := []struct {
		name    string
		err     error
		wantMsg string
		fields  []string
	}{
		{"one", grpcserver.InvalidArgument("items[1].quantity", "must be between 1 and 1000"), "items[1].quantity: must be between 1 and 1000", []string{"items[1].quantity"}},
		{"two", grpcserver.FieldViolations(grpcserver.Violation{Field: "a", Description: "x"}, grpcserver.Violation{Field: "b", Description: "y"}), "a: x", []string{"a", "b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st := status.Convert(tc.err)
			if st.Code() != codes.InvalidArgument || st.Message() != tc.wantMsg {
				t.Fatalf("got %v %q", st.Code(), st.Message())
			}
			var got []string
			for _, d := range st.Details() {
				if br, ok := d.(*errdetails.BadRequest); ok {
					for _, v := range br.GetFieldViolations() {
						got = append(got, v.GetField())
					}
				}
			}
			if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
				t.Fatalf("violations %v, want %v", got, tc.fields)
			}
		})
	}
	t.Run("internal hides the cause", func(t *testing.T) {
		logs := &syncBuffer{}
		err := grpcserver.Internal(context.Background(), slog.New(slog.NewJSONHandler(logs, nil)), "op", errString("db at /var/secret locked"))
		if st := status.Convert(err); st.Code() != codes.Internal || strings.Contains(st.Message(), "secret") {
			t.Fatalf("got %v %q", st.Code(), st.Message())
		}
		if !strings.Contains(logs.String(), "/var/secret") {
			t.Fatal("cause not logged")
		}
	})
}

type errString string

func (e errString) Error() string { return string(e) }

// TestStopForcesAfterTimeout: a stream that never ends (a health Watch) cannot hold Stop
// beyond its timeout; the stream is cut.
func TestStopForcesAfterTimeout(t *testing.T) {
	hs := health.NewServer()
	srv, conn := start(t, grpcserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Health: hs}, nil)
	stream, err := healthpb.NewHealthClient(conn).Watch(context.Background(), &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := stream.Recv(); err != nil || m.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Fatalf("first watch message %v, %v", m, err)
	}
	begin := time.Now()
	grpcserver.Stop(srv, hs, 100*time.Millisecond)
	if d := time.Since(begin); d > 5*time.Second {
		t.Fatalf("Stop took %v", d)
	}
	for {
		m, err := stream.Recv()
		if err != nil {
			break // cut by the forced stop
		}
		if m.GetStatus() != healthpb.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("watch saw %v during shutdown", m.GetStatus())
		}
	}
}

// TestMaxConcurrentStreams: with a cap of 1, a second call on the same connection waits until
// the first stream ends.
func TestMaxConcurrentStreams(t *testing.T) {
	_, conn := start(t, grpcserver.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxConcurrentStreams: 1}, nil)
	client := healthpb.NewHealthClient(conn)
	// Let the transport learn the server's setting first.
	if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatal(err)
	}
	watchCtx, cancelWatch := context.WithCancel(context.Background())
	stream, err := client.Watch(watchCtx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	_, err = client.Check(ctx, &healthpb.HealthCheckRequest{})
	cancel()
	if status.Code(err) != codes.DeadlineExceeded {
		t.Fatalf("second stream while the first is open: %v, want DEADLINE_EXCEEDED (queued)", err)
	}
	cancelWatch()
	ctx, cancel = context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := client.Check(ctx, &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("after the stream ended: %v", err)
	}
}
