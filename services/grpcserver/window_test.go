package grpcserver_test

import (
	"context"
	"log/slog"
	"net"
	"testing"

	"github.com/acme/shopgate/internal/h2frames"
	"github.com/acme/shopgate/services/grpcserver"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// recordingListener wraps every accepted connection in rec: it sees what the server writes.
type recordingListener struct {
	net.Listener
	rec *h2frames.Recorder
}

func (l recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.rec.Wrap(c, false), nil
}

// TestFixedWindows checks what the services' servers grant and send: fixed windows (the
// defaults, or the options') and no bandwidth-estimation PING after the requests, where a
// grpc-go server with its defaults sends one after nearly every request.
func TestFixedWindows(t *testing.T) {
	const calls = 20
	tests := []struct {
		name          string
		newServer     func() *grpc.Server
		wantStreamWin uint32
		wantConnWin   uint32
		wantPings     func(int) bool
	}{
		{"grpc-go defaults estimate the bandwidth-delay product", func() *grpc.Server {
			s := grpc.NewServer()
			healthpb.RegisterHealthServer(s, health.NewServer())
			return s
		}, 65535, 0, func(n int) bool { return n >= calls/2 }},
		{"grpcserver defaults", func() *grpc.Server {
			return grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler), DisableReflection: true})
		}, uint32(grpcserver.DefaultStreamWindow), uint32(grpcserver.DefaultConnWindow), func(n int) bool { return n == 0 }},
		{"grpcserver options, raised to 64 KiB", func() *grpc.Server {
			return grpcserver.New(grpcserver.Options{Logger: slog.New(slog.DiscardHandler), DisableReflection: true, StreamWindow: 1 << 20, ConnWindow: 1024})
		}, 1 << 20, 64 << 10, func(n int) bool { return n == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			rec := &h2frames.Recorder{}
			srv := tt.newServer()
			done := make(chan struct{})
			go func() { defer close(done); _ = srv.Serve(recordingListener{Listener: ln, rec: rec}) }()
			cc, err := grpc.NewClient(ln.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
			if err != nil {
				t.Fatal(err)
			}
			client := healthpb.NewHealthClient(cc)
			for range calls { // one at a time, as a lone client's requests come
				if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{Service: ""}); err != nil {
					t.Fatal(err)
				}
			}
			_ = cc.Close()
			srv.Stop()
			<-done
			rec.Check(t, "server", h2frames.Want{StreamWindow: tt.wantStreamWin, ConnWindow: tt.wantConnWin, Pings: tt.wantPings})
		})
	}
}
