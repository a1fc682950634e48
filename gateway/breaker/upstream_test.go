package breaker

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/deadline"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
)

// upstream is a real gRPC server on loopback serving the inventory and order services; it
// counts the calls that reach it and answers with the code the test sets (OK by default).
type upstream struct {
	inventoryv1.UnimplementedInventoryServiceServer
	orderv1.UnimplementedOrderServiceServer
	addr   string
	srv    *grpc.Server
	calls  atomic.Int64
	code   atomic.Uint32
	block  atomic.Bool // when set, calls wait until the caller gives up
	served chan struct{}
	opts   []grpc.ServerOption // the server's options (MaxConcurrentStreams)
}

func newUpstream(t *testing.T, opts ...grpc.ServerOption) *upstream {
	t.Helper()
	u := &upstream{opts: opts}
	u.start(t, "127.0.0.1:0")
	t.Cleanup(u.stop)
	return u
}

func (u *upstream) start(t *testing.T, addr string) {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen %s: %v", addr, err)
	}
	u.addr = ln.Addr().String()
	u.srv = grpc.NewServer(u.opts...)
	inventoryv1.RegisterInventoryServiceServer(u.srv, u)
	orderv1.RegisterOrderServiceServer(u.srv, u)
	u.served = make(chan struct{})
	go func(srv *grpc.Server, done chan struct{}) {
		defer close(done)
		_ = srv.Serve(ln)
	}(u.srv, u.served)
}

// stop stops the server and waits for it; safe to call twice.
func (u *upstream) stop() {
	if u.srv != nil {
		u.srv.Stop()
		<-u.served
		u.srv = nil
	}
}

func (u *upstream) answer(ctx context.Context) error {
	u.calls.Add(1)
	if u.block.Load() {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	if c := codes.Code(u.code.Load()); c != codes.OK {
		return status.Error(c, "upstream says "+c.String())
	}
	return nil
}

func (u *upstream) GetItem(ctx context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.Item, error) {
	if err := u.answer(ctx); err != nil {
		return nil, err
	}
	return &inventoryv1.Item{Sku: req.GetSku()}, nil
}

func (u *upstream) ListItems(ctx context.Context, _ *inventoryv1.ListItemsRequest) (*inventoryv1.ListItemsResponse, error) {
	if err := u.answer(ctx); err != nil {
		return nil, err
	}
	return &inventoryv1.ListItemsResponse{}, nil
}

func (u *upstream) GetOrder(ctx context.Context, req *orderv1.GetOrderRequest) (*orderv1.Order, error) {
	if err := u.answer(ctx); err != nil {
		return nil, err
	}
	return &orderv1.Order{Id: req.GetId()}, nil
}

func (u *upstream) WatchOrder(req *orderv1.WatchOrderRequest, stream grpc.ServerStreamingServer[orderv1.Order]) error {
	if err := u.answer(stream.Context()); err != nil {
		return err
	}
	return stream.Send(&orderv1.Order{Id: req.GetId()})
}

// dial connects to addr through the breakers' interceptors, reconnecting fast after an outage.
func dial(t *testing.T, addr string, b *Breakers, opts ...grpc.DialOption) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, append([]grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithChainUnaryInterceptor(deadline.Unary, b.UnaryClientInterceptor()), // as the gateway's pipeline orders them
		grpc.WithChainStreamInterceptor(deadline.Stream, b.StreamClientInterceptor()),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{
			BaseDelay: 10 * time.Millisecond, Multiplier: 1.2, MaxDelay: 50 * time.Millisecond,
		}, MinConnectTimeout: time.Second}),
	}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// pollUntil calls cond until it is true or the deadline passes.
func pollUntil(t *testing.T, deadline time.Duration, what string, cond func() bool) {
	t.Helper()
	end := time.Now().Add(deadline)
	for !cond() {
		if time.Now().After(end) {
			t.Fatalf("timed out after %v waiting for %s", deadline, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
