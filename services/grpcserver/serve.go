package grpcserver

import (
	"context"
	"errors"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
)

// DefaultStopTimeout is a reasonable drain time for Serve and Stop.
const DefaultStopTimeout = 10 * time.Second

// Serve serves srv on lis until ctx is done, then runs beforeStop (e.g. ending long streams) and
// Stop(srv, hs, timeout). It returns nil after such a shutdown, or Serve's error if serving
// failed first. A timeout of 0 means DefaultStopTimeout.
func Serve(ctx context.Context, srv *grpc.Server, lis net.Listener, hs *health.Server, timeout time.Duration, beforeStop ...func()) error {
	if timeout <= 0 {
		timeout = DefaultStopTimeout
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	for _, fn := range beforeStop {
		fn()
	}
	Stop(srv, hs, timeout)
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return err
	}
	return nil
}
