package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// heldLog is an access log writer that holds each line until the test closes the channel it
// hands over for that line.
type heldLog struct{ writing chan chan struct{} }

func (h *heldLog) Write(p []byte) (int, error) {
	release := make(chan struct{})
	h.writing <- release
	<-release
	return len(p), nil
}

// TestReplyBeforeBookkeeping: a unary reply (a success, an upstream error, a refusal) reaches
// the client whole, with its Content-Length, while the gateway's access log is still writing
// the request's line: the client never waits for the gateway's bookkeeping.
func TestReplyBeforeBookkeeping(t *testing.T) {
	be := startBackend(t)
	held := &heldLog{writing: make(chan chan struct{})}
	gw := startGateway(t, baseYAML(be.addr, ""), Options{AccessLogWriter: held})
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be.setBehave(tt.behave)
			defer be.setBehave(nil)
			got := make(chan reply, 1)
			failed := make(chan error, 1)
			go func() {
				req, _ := http.NewRequest(tt.method, gw.url+tt.path, jsonBody(tt.body))
				for k, v := range tt.header {
					req.Header[k] = v
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					failed <- err
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				if err != nil {
					failed <- err
					return
				}
				got <- reply{status: resp.StatusCode, header: resp.Header, body: b}
			}()
			release := <-held.writing // the request's access line is being written
			defer close(release)
			var r reply
			select {
			case r = <-got:
			case err := <-failed:
				t.Fatal(err)
			case <-time.After(10 * time.Second):
				t.Fatal("the reply waited for the access log")
			}
			if r.status != tt.wantStatus {
				t.Errorf("status %d, want %d: %s", r.status, tt.wantStatus, r.body)
			}
			if cl := r.header.Get("Content-Length"); cl != strconv.Itoa(len(r.body)) {
				t.Errorf("Content-Length %q for a body of %d bytes", cl, len(r.body))
			}
		})
	}
}
