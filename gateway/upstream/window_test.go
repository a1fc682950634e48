package upstream_test

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/acme/shopgate/gateway/upstream"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/internal/h2frames"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// TestFixedWindows checks what the gateway's upstream connections grant and send: fixed
// windows (the defaults, or the options') and no bandwidth-estimation PING after the replies,
// where a grpc-go client with its defaults sends one after nearly every reply.
func TestFixedWindows(t *testing.T) {
	const calls = 20
	tests := []struct {
		name          string
		gateway       bool // upstream.Dial; else grpc.NewClient with grpc-go's defaults
		opts          upstream.Options
		wantStreamWin uint32
		wantConnWin   uint32 // the connection window after the client's updates
		wantPings     func(int) bool
	}{
		{name: "grpc-go defaults estimate the bandwidth-delay product", wantStreamWin: 65535,
			wantPings: func(n int) bool { return n >= calls/2 }},
		{name: "upstream.Dial defaults", gateway: true,
			wantStreamWin: uint32(upstream.DefaultStreamWindow), wantConnWin: uint32(upstream.DefaultConnWindow),
			wantPings: func(n int) bool { return n == 0 }},
		{name: "upstream.Dial options", gateway: true, opts: upstream.Options{StreamWindow: 1 << 20, ConnWindow: 2 << 20},
			wantStreamWin: 1 << 20, wantConnWin: 2 << 20,
			wantPings: func(n int) bool { return n == 0 }},
		{name: "windows under 64 KiB are raised to 64 KiB", gateway: true, opts: upstream.Options{StreamWindow: 1024, ConnWindow: 1024},
			wantStreamWin: 64 << 10, wantConnWin: 64 << 10,
			wantPings: func(n int) bool { return n == 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := start(t, "b", 0)
			var mu sync.Mutex
			var recorders []*h2frames.Recorder // one per connection: upstream.Dial makes two per service
			dialer := func(ctx context.Context, addr string) (net.Conn, error) {
				c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
				if err != nil {
					return nil, err
				}
				frames := &h2frames.Recorder{}
				mu.Lock()
				recorders = append(recorders, frames)
				mu.Unlock()
				return frames.Wrap(c, true), nil
			}
			var cc grpc.ClientConnInterface
			var closeConn func() error
			if tt.gateway {
				opts := tt.opts
				opts.DisableHealthCheck = true // only the calls' frames on the connection
				opts.DialOptions = []grpc.DialOption{grpc.WithContextDialer(dialer)}
				set, err := upstream.Dial(map[string][]string{svc: {b.addr}}, opts)
				if err != nil {
					t.Fatal(err)
				}
				cc, closeConn = set.Conn(svc), set.Close
			} else {
				var err error
				conn, err := grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(dialer))
				if err != nil {
					t.Fatal(err)
				}
				cc, closeConn = conn, conn.Close
			}
			client := inventoryv1.NewInventoryServiceClient(cc)
			for range calls { // one at a time, as a lone client's requests come
				if _, err := client.GetItem(context.Background(), &inventoryv1.GetItemRequest{Sku: "sku-apple"}); err != nil {
					t.Fatal(err)
				}
			}
			_ = closeConn()
			mu.Lock()
			defer mu.Unlock()
			for _, frames := range recorders {
				frames.Check(t, "client", h2frames.Want{StreamWindow: tt.wantStreamWin, ConnWindow: tt.wantConnWin, Pings: tt.wantPings})
			}
		})
	}
}
