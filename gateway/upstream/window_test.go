package upstream_test

import (
	"context"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/upstream"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"golang.org/x/net/http2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// clientFrames reads, as HTTP/2 frames, everything a gRPC client writes on the connections it
// dials through dialer: the windows it grants and the PINGs it starts.
type clientFrames struct {
	mu         sync.Mutex
	pings      int    // PING frames the client started (acks of the server's not counted)
	streamWin  uint32 // SETTINGS_INITIAL_WINDOW_SIZE of the client's first SETTINGS (65535 if absent)
	connWinInc uint32 // WINDOW_UPDATE increments the client granted on the connection (stream 0)
	readers    sync.WaitGroup
}

func (f *clientFrames) dialer(ctx context.Context, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	f.readers.Add(1)
	go func() {
		defer f.readers.Done()
		f.read(pr)
		_, _ = io.Copy(io.Discard, pr) // never block the client's writes
	}()
	return &teeConn{Conn: c, w: pw}, nil
}

func (f *clientFrames) read(r io.Reader) {
	if _, err := io.ReadFull(r, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	fr := http2.NewFramer(nil, r)
	sawSettings := false
	for {
		frame, err := fr.ReadFrame()
		if err != nil {
			return
		}
		f.mu.Lock()
		switch fr := frame.(type) {
		case *http2.PingFrame:
			if !fr.IsAck() {
				f.pings++
			}
		case *http2.SettingsFrame:
			if !fr.IsAck() && !sawSettings {
				sawSettings = true
				f.streamWin = 65535
				if v, ok := fr.Value(http2.SettingInitialWindowSize); ok {
					f.streamWin = v
				}
			}
		case *http2.WindowUpdateFrame:
			if fr.StreamID == 0 {
				f.connWinInc += fr.Increment
			}
		}
		f.mu.Unlock()
	}
}

// teeConn copies what the client writes into w, and closes w with the connection.
type teeConn struct {
	net.Conn
	w *io.PipeWriter
}

func (c *teeConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	_, _ = c.w.Write(b[:n])
	return n, err
}

func (c *teeConn) Close() error {
	_ = c.w.Close()
	return c.Conn.Close()
}

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
			frames := &clientFrames{}
			var cc *grpc.ClientConn
			var closeConn func() error
			if tt.gateway {
				opts := tt.opts
				opts.DisableHealthCheck = true // only the calls' frames on the connection
				opts.DialOptions = []grpc.DialOption{grpc.WithContextDialer(frames.dialer)}
				set, err := upstream.Dial(map[string][]string{svc: {b.addr}}, opts)
				if err != nil {
					t.Fatal(err)
				}
				cc, closeConn = set.Conn(svc), set.Close
			} else {
				var err error
				cc, err = grpc.NewClient(b.addr, grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithContextDialer(frames.dialer))
				if err != nil {
					t.Fatal(err)
				}
				closeConn = cc.Close
			}
			client := inventoryv1.NewInventoryServiceClient(cc)
			for range calls { // one at a time, as a lone client's requests come
				if _, err := client.GetItem(context.Background(), &inventoryv1.GetItemRequest{Sku: "sku-apple"}); err != nil {
					t.Fatal(err)
				}
			}
			_ = closeConn()
			waitReaders(t, &frames.readers)

			frames.mu.Lock()
			defer frames.mu.Unlock()
			if frames.streamWin != tt.wantStreamWin {
				t.Errorf("stream window granted = %d, want %d", frames.streamWin, tt.wantStreamWin)
			}
			if tt.wantConnWin != 0 {
				if got := 65535 + frames.connWinInc; got != tt.wantConnWin {
					t.Errorf("connection window granted = %d, want %d", got, tt.wantConnWin)
				}
			}
			if !tt.wantPings(frames.pings) {
				t.Errorf("client started %d PINGs over %d calls", frames.pings, calls)
			}
		})
	}
}

// waitReaders waits for the frame readers, which end when their connection closes.
func waitReaders(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the client's connections were not closed")
	}
}
