package server

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// rawConn is a client's TCP connection to the gateway, spoken to byte by byte.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, gw *gateway) *rawConn {
	t.Helper()
	c, err := net.Dial("tcp", strings.TrimPrefix(gw.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{Conn: c, br: bufio.NewReader(c)}
}

// send writes raw (a whole request, or several) and reads one response whole.
func (c *rawConn) send(t *testing.T, raw string) (*http.Response, []byte) {
	t.Helper()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatalf("writing the request: %v", err)
	}
	return c.response(t)
}

// response reads the next response whole, within 5s.
func (c *rawConn) response(t *testing.T) (*http.Response, []byte) {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("reading the response: %v", err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body: %v", err)
	}
	return resp, body
}

// get sends a keep-alive GET of path and checks that it is answered 200.
func (c *rawConn) get(t *testing.T, path string) {
	t.Helper()
	resp, body := c.send(t, "GET "+path+" HTTP/1.1\r\nHost: gw\r\nX-Api-Key: "+customerKey+"\r\n\r\n")
	if resp.StatusCode != http.StatusOK || resp.Close {
		t.Fatalf("GET %s: %d (close %v), want 200 kept alive: %s", path, resp.StatusCode, resp.Close, body)
	}
}

// closedByServer reports whether the server closed the connection: a read ends with EOF (or a
// reset) within 5s, with nothing read.
func (c *rawConn) closedByServer(t *testing.T) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.br.Read(make([]byte, 1))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return n == 0 && err != nil
}

// stillOpen reports whether the server kept the connection: nothing to read for a moment.
func (c *rawConn) stillOpen(t *testing.T) bool {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err := c.br.Read(make([]byte, 1))
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// waitOpen waits (bounded) until the gateway counts want open connections.
func waitOpen(t *testing.T, gw *gateway, want int) {
	t.Helper()
	waitCount(t, "open", gw.connLimit.Open, want)
}

// waitCount waits (bounded) until count() is want: the server's side of a connection follows
// the client's with a delay.
func waitCount(t *testing.T, what string, count func() int, want int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for count() != want {
		if time.Now().After(deadline) {
			t.Fatalf("%d connections %s, want %d", count(), what, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMaxConnections runs a real gateway with server.max_connections 20 (pressure from 16 on)
// and real TCP connections (item 10: "no limit on connections; idle keep-alive connections all
// held for 120s"):
//
//  1. below pressure, idle keep-alive connections are kept (a second request on each is served);
//  2. reaching pressure closes the connections already idle longer than the pressure idle
//     timeout, and only those: a connection with a request in flight keeps it and gets its
//     answer, then is closed once idle;
//  3. at the cap, one more connection is closed at once and counted, and those within the cap
//     are still served;
//  4. every connection is uncounted once closed (the package's TestMain checks that no
//     goroutine is left behind).
func TestMaxConnections(t *testing.T) {
	const limit, pressure = 20, 16
	be := startBackend(t)
	reg := prometheus.NewRegistry()
	gw := startGateway(t, baseYAML(be.addr, fmt.Sprintf(`
server: {max_connections: %d, read_header_timeout: 1m}
`, limit)), Options{Registerer: reg, pressureIdle: time.Millisecond})
	gw.waitReady(t)
	waitOpen(t, gw, 0) // waitReady's connection

	// 1. Below pressure: idle connections are kept.
	var idle []*rawConn
	for range pressure - 6 {
		c := dialRaw(t, gw)
		c.get(t, "/healthz")
		idle = append(idle, c)
	}
	for i, c := range idle {
		if !c.stillOpen(t) {
			t.Fatalf("idle connection %d closed below pressure", i)
		}
		c.get(t, "/healthz")
	}
	// The client reads an answer before its server goroutine reports the connection idle.
	waitCount(t, "idle", gw.connLimit.Idle, len(idle))

	// 2. A request in flight when pressure begins; then pressure.
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	be.setBehave(func(ctx context.Context, method string) error {
		if strings.HasSuffix(method, "GetItem") {
			started <- struct{}{}
			<-release
		}
		return nil
	})
	busy := dialRaw(t, gw)
	if _, err := io.WriteString(busy, "GET /v1/inventory/items/sku-1 HTTP/1.1\r\nHost: gw\r\nX-Api-Key: "+customerKey+"\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	<-started
	var fresh []*rawConn
	for len(idle)+1+len(fresh) < pressure {
		fresh = append(fresh, dialRaw(t, gw))
	}
	for i, c := range idle {
		if !c.closedByServer(t) {
			t.Fatalf("idle connection %d still open under pressure", i)
		}
	}
	for 1+len(fresh) < pressure { // pressure still, now without the idle ones
		fresh = append(fresh, dialRaw(t, gw))
	}
	waitOpen(t, gw, 1+len(fresh))
	close(release)
	if resp, body := busy.response(t); resp.StatusCode != http.StatusOK {
		t.Fatalf("the request in flight when pressure began: %d: %s", resp.StatusCode, body)
	}
	if !busy.closedByServer(t) {
		t.Fatal("the busy connection, idle under pressure, was kept")
	}
	waitOpen(t, gw, len(fresh))

	// 3. The cap: 20 open, the 21st closed at once and counted.
	for len(fresh) < limit {
		fresh = append(fresh, dialRaw(t, gw))
	}
	waitOpen(t, gw, limit)
	over := dialRaw(t, gw)
	if !over.closedByServer(t) {
		t.Fatal("a connection over the cap was kept")
	}
	if got := testutil.ToFloat64(gw.connLimit.RefusedCounter()); got != 1 {
		t.Fatalf("gateway_connections_refused_total = %v, want 1", got)
	}
	resp, body := fresh[0].send(t, "GET /v1/inventory/items/sku-1 HTTP/1.1\r\nHost: gw\r\nX-Api-Key: "+customerKey+"\r\n\r\n")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("a request within the cap: %d: %s", resp.StatusCode, body)
	}
	if n, err := testutil.GatherAndCount(reg, "gateway_connections_open", "gateway_connections_refused_total"); err != nil || n != 2 {
		t.Fatalf("metrics registered: %d series, %v; want 2", n, err)
	}

	// 4. Closed connections are uncounted.
	for _, c := range fresh {
		_ = c.Close()
	}
	waitOpen(t, gw, 0)
}
