package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/linebuf"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// gatedLog is an access log sink that takes nothing until open is called, as a full pipe or a
// stopped log collector would, and then records what it gets.
type gatedLog struct {
	gate chan struct{}
	once sync.Once
	mu   sync.Mutex
	buf  strings.Builder
}

func (g *gatedLog) Write(p []byte) (int, error) {
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.Write(p)
}

func (g *gatedLog) open() { g.once.Do(func() { close(g.gate) }) }

func (g *gatedLog) String() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.buf.String()
}

// TestStalledAccessLogHoldsNoReply: with the access log buffered as cmd/gateway wires it
// (gateway/linebuf), a sink that takes nothing holds no reply: a success, an upstream error
// and a refusal each reach the client whole, with its Content-Length, meanwhile. Once the sink
// moves again, every request's line arrives.
func TestStalledAccessLogHoldsNoReply(t *testing.T) {
	be := startBackend(t)
	sink := &gatedLog{gate: make(chan struct{})}
	access := linebuf.New(sink, linebuf.Options{FlushInterval: time.Millisecond})
	t.Cleanup(func() { sink.open(); _ = access.Close() }) // also when the test fails midway
	gw := startGateway(t, baseYAML(be.addr, ""), Options{AccessLogWriter: access})
	gw.waitReady(t)
	tests := []struct {
		name, method, path, body string
		header                   http.Header
		behave                   func(context.Context, string) error
		wantStatus               int
	}{
		{name: "GET", method: http.MethodGet, path: "/v1/inventory/items/sku-1", wantStatus: http.StatusOK},
		{name: "POST", method: http.MethodPost, path: "/v1/orders", body: `{"items":[{"sku":"sku-1","quantity":1}]}`,
			header: customer(), wantStatus: http.StatusOK},
		{name: "upstream error", method: http.MethodGet, path: "/v1/inventory/items/sku-1", wantStatus: http.StatusNotFound,
			behave: func(context.Context, string) error { return status.Error(codes.NotFound, "no such item") }},
		{name: "refused by auth", method: http.MethodGet, path: "/v1/orders/o-1", wantStatus: http.StatusUnauthorized},
	}
	client := &http.Client{Timeout: 10 * time.Second} // a held reply fails the test instead of hanging it
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be.setBehave(tt.behave)
			defer be.setBehave(nil)
			req, _ := http.NewRequest(tt.method, gw.url+tt.path, jsonBody(tt.body))
			for k, v := range tt.header {
				req.Header[k] = v
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatalf("the reply waited for the access log: %v", err)
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d: %s", resp.StatusCode, tt.wantStatus, b)
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(b)) {
				t.Errorf("Content-Length %q for a body of %d bytes", cl, len(b))
			}
		})
	}
	sink.open()
	if err := access.Close(); err != nil {
		t.Fatal(err)
	}
	if got := strings.Count(sink.String(), `"msg":"request"`); got != len(tests) {
		t.Fatalf("%d access lines arrived, want %d:\n%s", got, len(tests), sink.String())
	}
}
