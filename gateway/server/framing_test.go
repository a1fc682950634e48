package server

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"testing"
)

// TestAmbiguousFramingRefused sends requests over raw TCP connections to a real gateway (RFC
// 9112: "a request with both Content-Length and Transfer-Encoding is served and the connection
// kept"). A request carrying both, in any case, alone or pipelined behind other requests, is
// refused with 400 INVALID_ARGUMENT (a google.rpc.Status with X-Request-Id) and the connection
// is closed after it; the requests before it on the connection are served, and a connection
// whose requests carry one of the two, or a body that merely looks like such a head, is kept.
func TestAmbiguousFramingRefused(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	gw.waitReady(t)
	const (
		get      = "GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n"
		chunked  = "GET /healthz HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
		length   = "GET /healthz HTTP/1.1\r\nHost: gw\r\nContent-Length: 3\r\n\r\nabc"
		both     = "GET /healthz HTTP/1.1\r\nHost: gw\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
		bothCase = "GET /healthz HTTP/1.1\r\nHost: gw\r\ntransfer-ENCODING: chunked\r\nCONTENT-length: 5\r\n\r\n0\r\n\r\n"
		// lookalikeBody looks like the end of an ambiguous head.
		lookalikeBody = "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
	)
	lookalike := "GET /healthz HTTP/1.1\r\nHost: gw\r\nContent-Length: " + strconv.Itoa(len(lookalikeBody)) + "\r\n\r\n" + lookalikeBody
	lookalikeChunked := "GET /healthz HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: chunked\r\n\r\n" +
		strconv.FormatInt(int64(len(lookalikeBody)), 16) + "\r\n" + lookalikeBody + "\r\n0\r\n\r\n"
	refused := 0
	for _, tt := range []struct {
		name    string
		send    []string // written one by one, each answered before the next
		refused bool     // the last is refused and the connection closed; the others served and kept
	}{
		{"keep-alive GETs", []string{get, get}, false},
		{"chunked bodies", []string{chunked, chunked, get}, false},
		{"Content-Length bodies", []string{length, length}, false},
		{"a body that looks like an ambiguous head", []string{lookalike, get}, false},
		{"a chunked body that looks like an ambiguous head", []string{lookalikeChunked, get}, false},
		{"pipelined bodies that look like ambiguous heads", []string{lookalike + lookalikeChunked + get}, false},
		{"both", []string{both}, true},
		{"both, other case and order", []string{bothCase}, true},
		{"both after other requests", []string{get, chunked, length, both}, true},
		{"pipelined, both last", []string{get + length + chunked + both}, true},
		{"pipelined behind a chunked body that looks like a head", []string{lookalikeChunked + both}, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c := dialRaw(t, gw)
			for i, raw := range tt.send {
				last := i == len(tt.send)-1
				if _, err := c.Write([]byte(raw)); err != nil {
					t.Fatal(err)
				}
				for range countRequests(raw) - 1 { // pipelined ahead of the last
					if resp, body := c.response(t); resp.StatusCode != http.StatusOK || resp.Close {
						t.Fatalf("pipelined request: %d (close %v): %s", resp.StatusCode, resp.Close, body)
					}
				}
				resp, body := c.response(t)
				if !last || !tt.refused {
					if resp.StatusCode != http.StatusOK || resp.Close {
						t.Fatalf("request %d: %d (close %v), want 200 kept alive: %s", i, resp.StatusCode, resp.Close, body)
					}
					continue
				}
				r := reply{status: resp.StatusCode, header: resp.Header, body: body}
				if code, msg, _ := r.rpcStatus(t); r.status != http.StatusBadRequest || code != 3 ||
					msg != "request has both Content-Length and Transfer-Encoding" {
					t.Fatalf("ambiguous request: %d %d %q, want 400 INVALID_ARGUMENT", r.status, code, msg)
				}
				if !resp.Close || resp.Header.Get("X-Request-Id") == "" {
					t.Fatalf("ambiguous request: close %v, X-Request-Id %q; want Connection: close and an id", resp.Close, resp.Header.Get("X-Request-Id"))
				}
			}
			if tt.refused {
				refused++
			}
			if got := testutil.ToFloat64(gw.ambiguous); got != float64(refused) {
				t.Fatalf("gateway_http_ambiguous_framing_total = %v, want %d", got, refused)
			}
			if tt.refused && !c.closedByServer(t) {
				t.Fatal("the connection was kept after the ambiguous request")
			}
			if !tt.refused && !c.stillOpen(t) {
				t.Fatal("the connection was closed")
			}
		})
	}
}

// countRequests counts the requests of a test's pipelined requests.
func countRequests(raw string) int { return strings.Count(raw, "GET /healthz HTTP") }
