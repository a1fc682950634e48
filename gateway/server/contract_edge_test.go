package server

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// rawExchange sends raw bytes to the gateway on a new connection and reads one response.
// stall, when set, keeps the connection open without sending more.
func rawExchange(t *testing.T, addr, request string) (*http.Response, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("reading the answer to %q: %v", request[:min(len(request), 60)], err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// TestAnswersKeepTheContract: answers that net/http or grpc-gateway used to give on their own
// terms (plain text, no request id, the wrong status, internal addresses) are google.rpc.Status
// with X-Request-Id and the contract's status.
func TestAnswersKeepTheContract(t *testing.T) {
	be := startBackend(t)
	g := startGateway(t, baseYAML(be.addr, "server: {read_timeout: 300ms, max_header_bytes: 2048}\n"), Options{})
	g.waitReady(t)
	addr := strings.TrimPrefix(g.url, "http://")
	tests := []struct {
		name       string
		request    string
		wantStatus int
		wantCode   int
		wantHeader map[string]string
		wantClose  bool
	}{
		{"a body that stalls: 408, no address",
			"POST /v1/orders HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + customerKey + "\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"items\":",
			http.StatusRequestTimeout, 3, nil, true},
		{"trailing data after the JSON body: 400",
			"POST /v1/orders HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + customerKey + "\r\nContent-Length: 16\r\n\r\n{\"items\":[]}junk",
			http.StatusBadRequest, 3, nil, false},
		{"headers over the limit: 431",
			"GET /v1/inventory/items/sku-1 HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 8000) + "\r\n\r\n",
			http.StatusRequestHeaderFieldsTooLarge, 3, nil, true},
		{"a malformed request: 400",
			"GET /v1/inventory/items/sku-1 HTTP/1.1\r\nNo colon here\r\n\r\n",
			http.StatusBadRequest, 3, nil, true},
		{"GET on a custom method: 405",
			"GET /v1/orders/o-1:cancel HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + customerKey + "\r\n\r\n",
			http.StatusMethodNotAllowed, 12, map[string]string{"Allow": "POST"}, false},
		{"DELETE /metrics: 405",
			"DELETE /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
			http.StatusMethodNotAllowed, 12, map[string]string{"Allow": "GET, HEAD"}, false},
		{"POST /healthz: 405",
			"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
			http.StatusMethodNotAllowed, 12, map[string]string{"Allow": "GET, HEAD"}, false},
		{"an Idempotency-Key with a TAB: 400",
			"POST /v1/orders HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + customerKey + "\r\nIdempotency-Key: a\tb\r\nContent-Length: 12\r\n\r\n{\"items\":[]}",
			http.StatusBadRequest, 3, nil, false},
		{"an Idempotency-Key that is not ASCII: 400",
			"POST /v1/orders HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + customerKey + "\r\nIdempotency-Key: cl\xc3\xa9\r\nContent-Length: 12\r\n\r\n{\"items\":[]}",
			http.StatusBadRequest, 3, nil, false},
		{"two Idempotency-Keys: 400",
			"POST /v1/orders HTTP/1.1\r\nHost: x\r\nX-Api-Key: " + customerKey + "\r\nIdempotency-Key: a\r\nIdempotency-Key: b\r\nContent-Length: 12\r\n\r\n{\"items\":[]}",
			http.StatusBadRequest, 3, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := rawExchange(t, addr, tt.request)
			r := reply{status: resp.StatusCode, header: resp.Header, body: body}
			if r.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", r.status, tt.wantStatus, body)
			}
			code, msg, _ := r.rpcStatus(t)
			if code != tt.wantCode {
				t.Errorf("code %d, want %d (%s)", code, tt.wantCode, msg)
			}
			if strings.Contains(msg, "127.0.0.1") || strings.Contains(msg, "tcp") {
				t.Errorf("message %q names an internal address", msg)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			for k, v := range tt.wantHeader {
				if got := r.header.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if tt.wantClose && !resp.Close {
				t.Error("the connection is kept; want Connection: close")
			}
		})
	}
}

// TestHeadIsServedAsGet: HEAD on a GET route answers the GET's status and headers, without a
// body; the upstream sees a GetItem.
func TestHeadIsServedAsGet(t *testing.T) {
	be := startBackend(t)
	g := startGateway(t, baseYAML(be.addr, ""), Options{})
	g.waitReady(t)
	get := do(t, nil, http.MethodGet, g.url+"/v1/inventory/items/sku-1", nil, nil)
	head := do(t, nil, http.MethodHead, g.url+"/v1/inventory/items/sku-1", nil, nil)
	if head.status != http.StatusOK || len(head.body) != 0 {
		t.Fatalf("HEAD: %d with %d body bytes, want 200 and none", head.status, len(head.body))
	}
	if head.header.Get("Content-Length") != fmt.Sprint(len(get.body)) {
		t.Errorf("HEAD Content-Length %q, want the GET's %d", head.header.Get("Content-Length"), len(get.body))
	}
	if m := be.last(t).method; m != "GetItem" {
		t.Errorf("the upstream saw %s, want GetItem", m)
	}
}

// TestIdempotencyKeyReachesTheService: a printable key is forwarded as it is.
func TestIdempotencyKeyReachesTheService(t *testing.T) {
	be := startBackend(t)
	g := startGateway(t, baseYAML(be.addr, ""), Options{})
	g.waitReady(t)
	h := customer()
	h.Set("Idempotency-Key", "order 42/retry-1")
	if r := do(t, nil, http.MethodPost, g.url+"/v1/orders", jsonBody(`{"items":[{"sku":"a","quantity":1}]}`), h); r.status != http.StatusOK {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	if got := be.last(t).md.Get("idempotency-key"); len(got) != 1 || got[0] != "order 42/retry-1" {
		t.Errorf("the service saw idempotency-key %q", got)
	}
}
