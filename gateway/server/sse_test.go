package server

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/sse"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
)

// handTicker is an sse.Ticker the test ticks by hand; every stream's ticker shares ticks.
type handTicker struct{ ticks chan time.Time }

func (h handTicker) C() <-chan time.Time { return h.ticks }
func (h handTicker) Stop()               {}

// sseEvent is one frame of an event stream as a client parses it (the WHATWG rules: field
// lines, a blank line dispatches, lines beginning with ':' are comments).
type sseEvent struct {
	id, event, data string
	comment         string // a comment-only frame (a heartbeat)
}

// sseReader parses an event stream frame by frame.
type sseReader struct{ r *bufio.Reader }

// next returns the next frame, or io.EOF once the stream ended cleanly.
func (s sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data []string
	seen := false
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			if err == io.EOF && line == "" && !seen {
				return ev, io.EOF
			}
			return ev, io.ErrUnexpectedEOF
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			if !seen {
				continue
			}
			ev.data = strings.Join(data, "\n")
			return ev, nil
		}
		seen = true
		if c, ok := strings.CutPrefix(line, ":"); ok {
			ev.comment = strings.TrimSpace(c)
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.id = value
		case "event":
			ev.event = value
		case "data":
			data = append(data, value)
		}
	}
}

// sseGateway starts a backend and a gateway whose heartbeats tick on ticks.
func sseGateway(t *testing.T, ticks chan time.Time) (*backend, *gateway) {
	t.Helper()
	be := startBackend(t)
	opts := Options{Logger: discardLogger()}
	if ticks != nil {
		opts.sseTicker = func(time.Duration) sse.Ticker { return handTicker{ticks} }
	}
	gw := startGateway(t, baseYAML(be.addr, ""), opts)
	return be, gw
}

// startWatch opens GET /v1/orders/o-1:watch with accept (none when empty) as the customer.
func startWatch(t *testing.T, gw *gateway, accept string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, gw.url+"/v1/orders/o-1:watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", customerKey)
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	transport := &http.Transport{}
	resp, err := (&http.Client{Transport: transport}).Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = resp.Body.Close(); transport.CloseIdleConnections() })
	return resp
}

func orderOf(t *testing.T, data string) *orderv1.Order {
	t.Helper()
	var o orderv1.Order
	if err := marshaler.Unmarshal([]byte(data), &o); err != nil {
		t.Fatalf("event data %q is not an Order: %v", data, err)
	}
	return &o
}

// TestSSEEventsArriveOneByOne: with Accept: text/event-stream each order change arrives as its
// own numbered event while the stream is still open (the next is sent only after the test
// read the previous one), and the stream ends cleanly after the final status.
func TestSSEEventsArriveOneByOne(t *testing.T) {
	be, gw := sseGateway(t, nil)
	statuses := []orderv1.OrderStatus{orderv1.OrderStatus_ORDER_STATUS_PENDING, orderv1.OrderStatus_ORDER_STATUS_CONFIRMED, orderv1.OrderStatus_ORDER_STATUS_CANCELLED}
	next := make(chan struct{})
	be.setWatch(func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
		for i, st := range statuses {
			if i > 0 {
				select {
				case <-next:
				case <-stream.Context().Done():
					return stream.Context().Err()
				}
			}
			if err := stream.Send(&orderv1.Order{Id: "o-1", Status: st}); err != nil {
				return err
			}
		}
		return nil // the final status: the service ends the stream
	})
	resp := startWatch(t, gw, "application/json;q=0.5, text/event-stream")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d, want 200", resp.StatusCode)
	}
	for k, want := range map[string]string{"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"} {
		if got := resp.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	rd := sseReader{bufio.NewReader(resp.Body)}
	for i, want := range statuses {
		if i > 0 {
			next <- struct{}{}
		}
		ev, err := rd.next()
		if err != nil {
			t.Fatalf("event %d: %v", i+1, err)
		}
		if ev.event != "" || ev.id != []string{"1", "2", "3"}[i] {
			t.Errorf("event %d: event %q id %q, want a message event with id %d", i+1, ev.event, ev.id, i+1)
		}
		if got := orderOf(t, ev.data).GetStatus(); got != want {
			t.Errorf("event %d: status %s, want %s", i+1, got, want)
		}
	}
	if ev, err := rd.next(); err != io.EOF {
		t.Fatalf("after the final status: %+v, %v; want the end of the stream", ev, err)
	}
}

// TestSSEErrorEvent: a stream that fails after its first event ends with an error event whose
// data is the sanitized google.rpc.Status, then closes; one that fails before any event is a
// plain HTTP error with a google.rpc.Status body.
func TestSSEErrorEvent(t *testing.T) {
	tests := []struct {
		name     string
		sendOne  bool
		err      error
		wantCode codes.Code
		wantMsg  string
		wantHTTP int
	}{
		{"upstream fails mid-stream", true, status.Error(codes.Unavailable, "dial tcp 10.1.2.3:50051: refused"), codes.Unavailable, msgUnavailable, http.StatusOK},
		{"internal error mid-stream", true, status.Error(codes.Internal, "pq: relation orders does not exist"), codes.Internal, "", http.StatusOK},
		{"refused before the first event", false, status.Error(codes.NotFound, "order not found"), codes.NotFound, "order not found", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be, gw := sseGateway(t, nil)
			be.setWatch(func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
				if tt.sendOne {
					if err := stream.Send(&orderv1.Order{Id: "o-1"}); err != nil {
						return err
					}
				}
				return tt.err
			})
			resp := startWatch(t, gw, "text/event-stream")
			if resp.StatusCode != tt.wantHTTP {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.wantHTTP)
			}
			var st struct {
				Code    codes.Code `json:"code"`
				Message string     `json:"message"`
			}
			if !tt.sendOne {
				body, _ := io.ReadAll(resp.Body)
				r := reply{status: resp.StatusCode, header: resp.Header, body: body}
				code, msg, _ := r.rpcStatus(t)
				if codes.Code(code) != tt.wantCode || msg != tt.wantMsg {
					t.Errorf("status %d %q, want %d %q", code, msg, tt.wantCode, tt.wantMsg)
				}
				return
			}
			rd := sseReader{bufio.NewReader(resp.Body)}
			if ev, err := rd.next(); err != nil || ev.id != "1" {
				t.Fatalf("first event %+v, %v", ev, err)
			}
			ev, err := rd.next()
			if err != nil || ev.event != "error" {
				t.Fatalf("second frame %+v, %v; want an error event", ev, err)
			}
			if err := json.Unmarshal([]byte(ev.data), &st); err != nil {
				t.Fatalf("error data %q: %v", ev.data, err)
			}
			if st.Code != tt.wantCode || (tt.wantMsg != "" && st.Message != tt.wantMsg) {
				t.Errorf("error event %+v, want code %d message %q", st, tt.wantCode, tt.wantMsg)
			}
			if strings.Contains(ev.data, "10.1.2.3") || strings.Contains(ev.data, "pq:") {
				t.Errorf("error event leaks upstream text: %s", ev.data)
			}
			if ev, err := rd.next(); err != io.EOF {
				t.Fatalf("after the error event: %+v, %v; want the end", ev, err)
			}
		})
	}
}

// TestSSEHeartbeats: an idle stream gets a ": keep-alive" comment once a whole tick passed
// without an event (the test ticks the clock), none while events flow, and events still come
// after it.
func TestSSEHeartbeats(t *testing.T) {
	ticks := make(chan time.Time)
	be, gw := sseGateway(t, ticks)
	more := make(chan struct{})
	be.setWatch(func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
		if err := stream.Send(&orderv1.Order{Id: "o-1", Status: orderv1.OrderStatus_ORDER_STATUS_PENDING}); err != nil {
			return err
		}
		select {
		case <-more:
		case <-stream.Context().Done():
			return stream.Context().Err()
		}
		return stream.Send(&orderv1.Order{Id: "o-1", Status: orderv1.OrderStatus_ORDER_STATUS_CONFIRMED})
	})
	resp := startWatch(t, gw, "text/event-stream")
	rd := sseReader{bufio.NewReader(resp.Body)}
	if ev, err := rd.next(); err != nil || ev.id != "1" {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	ticks <- time.Now() // the first event was written in this interval: no heartbeat
	ticks <- time.Now() // a whole interval idle: one heartbeat
	ev, err := rd.next()
	if err != nil || ev.comment != "keep-alive" || ev.data != "" {
		t.Fatalf("after an idle interval: %+v, %v; want a keep-alive comment", ev, err)
	}
	ticks <- time.Now() // still idle: another
	if ev, err := rd.next(); err != nil || ev.comment != "keep-alive" {
		t.Fatalf("after a second idle interval: %+v, %v", ev, err)
	}
	close(more)
	ev, err = rd.next()
	if err != nil || ev.id != "2" || orderOf(t, ev.data).GetStatus() != orderv1.OrderStatus_ORDER_STATUS_CONFIRMED {
		t.Fatalf("after the heartbeats: %+v, %v; want event 2", ev, err)
	}
	if ev, err := rd.next(); err != io.EOF {
		t.Fatalf("after the last event: %+v, %v; want the end", ev, err)
	}
}

// TestStreamNDJSON: without an Accept that chooses events, the stream stays newline-delimited
// JSON, {"result": ...} per line, now labelled application/x-ndjson, with no heartbeats.
func TestStreamNDJSON(t *testing.T) {
	for _, accept := range []string{"", "application/json", "*/*", "text/event-stream;q=0", "text/*", "application/x-ndjson, text/event-stream;q=0.5"} {
		t.Run(accept, func(t *testing.T) {
			be, gw := sseGateway(t, nil)
			be.setWatch(func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
				if err := stream.Send(&orderv1.Order{Id: "o-1", Status: orderv1.OrderStatus_ORDER_STATUS_PENDING}); err != nil {
					return err
				}
				return stream.Send(&orderv1.Order{Id: "o-1", Status: orderv1.OrderStatus_ORDER_STATUS_CANCELLED})
			})
			resp := startWatch(t, gw, accept)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); ct != sse.NDJSONContentType {
				t.Errorf("Content-Type = %q, want %q", ct, sse.NDJSONContentType)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(string(body), "\n"), "\n")
			if len(lines) != 2 {
				t.Fatalf("body %q: want 2 lines", body)
			}
			for _, line := range lines {
				var m struct {
					Result json.RawMessage `json:"result"`
				}
				if err := json.Unmarshal([]byte(line), &m); err != nil || orderOf(t, string(m.Result)).GetId() != "o-1" {
					t.Errorf("line %q: %v", line, err)
				}
			}
		})
	}
}

// setWatch makes the backend's :watch run f.
func (u *backend) setWatch(f func(stream grpc.ServerStreamingServer[orderv1.Order]) error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.watch = f
}

// TestSSEUpstreamKilled: the upstream process dies mid-stream (its gRPC server stops, closing
// the connection): the client gets an error event with UNAVAILABLE and the stream ends.
func TestSSEUpstreamKilled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	be := &backend{addr: ln.Addr().String()}
	gs := grpc.NewServer()
	orderv1.RegisterOrderServiceServer(gs, be)
	served := make(chan struct{})
	go func() { defer close(served); _ = gs.Serve(ln) }()
	var stopOnce sync.Once
	stop := func() { stopOnce.Do(func() { gs.Stop(); <-served }) }
	t.Cleanup(stop)
	sent := make(chan struct{})
	be.setWatch(func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
		if err := stream.Send(&orderv1.Order{Id: "o-1"}); err != nil {
			return err
		}
		close(sent)
		<-stream.Context().Done()
		return stream.Context().Err()
	})
	gw := startGateway(t, baseYAML(be.addr, ""), Options{Logger: discardLogger()})
	resp := startWatch(t, gw, "text/event-stream")
	rd := sseReader{bufio.NewReader(resp.Body)}
	if ev, err := rd.next(); err != nil || ev.id != "1" {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	<-sent
	stop() // the upstream dies
	ev, err := rd.next()
	if err != nil || ev.event != "error" {
		t.Fatalf("after the upstream died: %+v, %v; want an error event", ev, err)
	}
	var st struct {
		Code    codes.Code `json:"code"`
		Message string     `json:"message"`
	}
	if err := json.Unmarshal([]byte(ev.data), &st); err != nil || st.Code != codes.Unavailable || st.Message != msgUnavailable {
		t.Errorf("error event %q (%v): want UNAVAILABLE %q", ev.data, err, msgUnavailable)
	}
	if ev, err := rd.next(); err != io.EOF {
		t.Fatalf("after the error event: %+v, %v; want the end", ev, err)
	}
}
