package edge_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/edge"
)

// heldWriter is an access log writer that holds each line until released, as a slow disk or a
// full pipe would.
type heldWriter struct {
	writing chan struct{} // a line is being written
	release chan struct{}
}

func (h *heldWriter) Write(p []byte) (int, error) {
	h.writing <- struct{}{}
	<-h.release
	return len(p), nil
}

// TestReplyLeavesAtItsLastByte: a reply whose Content-Length is declared reaches the client
// while the access log is still writing its line; the client never waits for the gateway's
// bookkeeping. A reply without a declared length is sent when the handler returns, as net/http
// does (and so is held by the access log here).
func TestReplyLeavesAtItsLastByte(t *testing.T) {
	tests := []struct {
		name          string
		writes        []string
		declareLength bool
		wantEarly     bool
	}{
		{name: "one write of a declared length", writes: []string{`{"sku":"sku-apple"}`}, declareLength: true, wantEarly: true},
		{name: "the last of several writes", writes: []string{`{"sku":`, `"sku-apple"}`}, declareLength: true, wantEarly: true},
		{name: "no declared length", writes: []string{`{"sku":"sku-apple"}`}, wantEarly: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := ""
			for _, w := range tt.writes {
				body += w
			}
			held := &heldWriter{writing: make(chan struct{}), release: make(chan struct{})}
			h := edge.RequestID(edge.AccessLogJSON(held, nil, nil)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				if tt.declareLength {
					w.Header().Set("Content-Length", strconv.Itoa(len(body)))
				}
				for _, part := range tt.writes {
					_, _ = io.WriteString(w, part)
				}
			})))
			srv := httptest.NewServer(h)
			defer srv.Close()

			type result struct {
				body string
				err  error
			}
			got := make(chan result, 1)
			go func() {
				resp, err := srv.Client().Get(srv.URL)
				if err != nil {
					got <- result{err: err}
					return
				}
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				got <- result{body: string(b), err: err}
			}()

			<-held.writing // the handler returned; the access log is writing its line
			var r result
			if tt.wantEarly {
				select {
				case r = <-got:
				case <-time.After(10 * time.Second):
					close(held.release)
					t.Fatal("the reply waited for the access log")
				}
				close(held.release)
			} else {
				close(held.release)
				r = <-got
			}
			if r.err != nil || r.body != body {
				t.Fatalf("client got %q, %v; want %q", r.body, r.err, body)
			}
		})
	}
}

// TestWhenTheRecorderFlushes pins when the edge sends a reply before the handler returns: at
// the last byte of a declared Content-Length, on HTTP/1 only.
func TestWhenTheRecorderFlushes(t *testing.T) {
	tests := []struct {
		name       string
		protoMajor int
		length     string // Content-Length declared, if any
		writes     []string
		wantFlush  bool
	}{
		{"HTTP/1, declared, written whole", 1, "5", []string{"he", "llo"}, true},
		{"HTTP/1, declared, not yet whole", 1, "6", []string{"hello"}, false},
		{"HTTP/1, no length", 1, "", []string{"hello"}, false},
		{"HTTP/1, a bad length", 1, "five", []string{"hello"}, false},
		{"HTTP/2, declared, written whole", 2, "5", []string{"hello"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			req.ProtoMajor = tt.protoMajor
			_, w, _ := edge.Ensure(rec, req)
			if tt.length != "" {
				w.Header().Set("Content-Length", tt.length)
			}
			for _, part := range tt.writes {
				_, _ = io.WriteString(w, part)
			}
			if rec.Flushed != tt.wantFlush {
				t.Errorf("flushed = %t, want %t", rec.Flushed, tt.wantFlush)
			}
		})
	}
}
