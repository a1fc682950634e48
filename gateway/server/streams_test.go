package server

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
)

// bobKey is one more caller for the stream tests (gateway/auth's X-API-Key), besides
// customerKey (alice) and adminKey (root).
const bobKey = "test-bob-key-0123456789"

const orderService = "shop.order.v1.OrderService"

// streamsYAML is baseYAML with bob's key (its first line continues baseYAML's api_keys list),
// one breaker per service (as in the incident: the watches' and GetOrder's) that one counted
// failure opens, and extra.
func streamsYAML(addr, extra string) string {
	return baseYAML(addr, `    - {sha256: "`+sha(bobKey)+`", subject: bob, roles: [customer]}
breaker: {scope: service, consecutive_failures: 1, open_timeout: 1h}
`+extra)
}

// holdWatches makes the backend's :watch send the order once, then stay open until the call
// ends.
func holdWatches(be *backend) {
	be.mu.Lock()
	defer be.mu.Unlock()
	be.watch = func(stream grpc.ServerStreamingServer[orderv1.Order]) error {
		if err := stream.Send(&orderv1.Order{Id: "o-1", Status: orderv1.OrderStatus_ORDER_STATUS_PENDING}); err != nil {
			return err
		}
		<-stream.Context().Done()
		return status.FromContextError(stream.Context().Err()).Err()
	}
}

// openWatch starts a :watch as key and reads its first message: the stream is open end to end
// until the returned function closes it.
func openWatch(t *testing.T, client *http.Client, url, key string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/v1/orders/o-1:watch", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	stop = func() { cancel(); _ = resp.Body.Close() }
	if resp.StatusCode != http.StatusOK {
		stop()
		t.Fatalf("watch as %s: %d, want 200", key, resp.StatusCode)
	}
	if line, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil || !strings.Contains(line, `"result"`) {
		stop()
		t.Fatalf("watch as %s: first line %q, %v", key, line, err)
	}
	return stop
}

// watchClient returns an HTTP client for watches and the list of its open watches'
// closers (openWatch), all closed, with the client's connections, when the test ends.
func watchClient(t *testing.T) (*http.Client, *[]func()) {
	transport := &http.Transport{}
	stops := new([]func())
	t.Cleanup(func() {
		for _, stop := range *stops {
			stop()
		}
		transport.CloseIdleConnections()
	})
	return &http.Client{Transport: transport}, stops
}

// closeWatches closes the watches of stops (openWatch) and waits until the gateway gave back
// every place they held: a place is given back when the gateway's handler returns, just after
// the client went away.
func closeWatches(t *testing.T, gw *gateway, stops *[]func()) {
	t.Helper()
	for _, stop := range *stops {
		stop()
	}
	*stops = nil
	deadline := time.Now().Add(5 * time.Second)
	for gw.cur.Load().streams.Counts().Callers() != 0 {
		if time.Now().After(deadline) {
			t.Fatal("the places of closed watches were not given back within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOneCallersStreamsStarveNoOne reproduces the incident at a small scale: the upstream
// allows 5 concurrent streams per connection (MaxConcurrentStreams), one of them the health
// check's, and alice may hold 4 streams (streams.max_per_caller). Alice's 4 watches fill the
// gateway's stream connection: her 5th is refused with 429 before it reaches the upstream,
// and another caller's watch can only queue for a slot (until its own Grpc-Timeout: 504).
// Meanwhile every GetOrder of the other callers answers 200 within its route's timeout (they
// have their own connection), and the order breaker stays closed. Closing alice's watches
// frees her places.
func TestOneCallersStreamsStarveNoOne(t *testing.T) {
	const maxPerCaller = 4
	be := startBackend(t, grpc.MaxConcurrentStreams(maxPerCaller+1))
	holdWatches(be)
	gw := startGateway(t, streamsYAML(be.addr, `
streams: {max_per_caller: 4}
routes:
  shop.order.v1.OrderService/GetOrder: {timeout: 2s}
`), Options{})
	gw.waitReady(t)
	client, stops := watchClient(t)
	for range maxPerCaller {
		*stops = append(*stops, openWatch(t, client, gw.url, customerKey))
	}
	watches := be.count()

	t.Run("over the cap: 429 with Retry-After", func(t *testing.T) {
		r := do(t, client, http.MethodGet, gw.url+"/v1/orders/o-1:watch", nil, customer())
		code, msg, details := r.rpcStatus(t)
		if r.status != http.StatusTooManyRequests || code != int(codes.ResourceExhausted) || msg != "too many open streams" {
			t.Fatalf("watch %d of alice: %d %d %q, want 429 RESOURCE_EXHAUSTED \"too many open streams\"", maxPerCaller+1, r.status, code, msg)
		}
		if r.header.Get("Retry-After") != "1" || len(details) != 1 || details[0]["retryDelay"] != "1s" {
			t.Fatalf("Retry-After %q, details %v; want 1 and a RetryInfo of 1s", r.header.Get("Retry-After"), details)
		}
		if r.header.Get("Ratelimit") == "" || r.header.Get("X-Request-Id") == "" {
			t.Fatalf("headers %v: want the rate limit's RateLimit (the call passed it), and X-Request-Id", r.header)
		}
		if be.count() != watches {
			t.Fatal("the refused watch reached the upstream")
		}
	})

	t.Run("the stream connection is full", func(t *testing.T) {
		r := do(t, client, http.MethodGet, gw.url+"/v1/orders/o-1:watch", nil, http.Header{"X-Api-Key": {bobKey}, "Grpc-Timeout": {"200m"}})
		if code, _, _ := r.rpcStatus(t); r.status != http.StatusGatewayTimeout || code != int(codes.DeadlineExceeded) {
			t.Fatalf("bob's watch with every stream slot taken: %d (%s), want 504 after queueing for a slot", r.status, r.body)
		}
	})

	t.Run("unary calls of other callers answer", func(t *testing.T) {
		const perCaller = 10
		var wg sync.WaitGroup
		errs := make(chan string, 2*perCaller)
		for _, key := range []string{bobKey, adminKey} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range perCaller {
					if e := getOrder(client, gw.url, key); e != "" {
						errs <- e
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Errorf("GetOrder while alice's watches hold every stream slot: %s", e)
		}
	})

	if st := gw.breakers.States()[orderService]; st != "closed" {
		t.Fatalf("order breaker %s, want closed", st)
	}

	t.Run("closing streams frees their places", func(t *testing.T) {
		closeWatches(t, gw, stops)
		for range maxPerCaller {
			*stops = append(*stops, openWatch(t, client, gw.url, customerKey))
		}
	})
}

// TestQueuedStreamDoesNotOpenTheBreaker fills the gateway's stream connection to the order
// service (the upstream allows 2 streams: the health check's and one held here, without a
// deadline) and sends :watch requests that queue for a slot until their route's timeout:
// each answers 504, and the order breaker, which one counted failure would open, stays
// closed. Unary calls still answer.
func TestQueuedStreamDoesNotOpenTheBreaker(t *testing.T) {
	be := startBackend(t, grpc.MaxConcurrentStreams(2))
	holdWatches(be)
	gw := startGateway(t, streamsYAML(be.addr, `
routes:
  shop.order.v1.OrderService/WatchOrder: {timeout: 200ms}
`), Options{})
	gw.waitReady(t)

	ctx, release := context.WithCancel(context.Background())
	defer release()
	conn := gw.cur.Load().conns.set.Conn(orderService)
	// The slot is held by a health watch: a stream no route timeout bounds (the service config
	// bounds WatchOrder by its route's 200ms).
	hold, err := healthpb.NewHealthClient(conn).Watch(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hold.Recv(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name   string
		path   string
		header http.Header
		want   int
	}{
		{"a watch queued for a slot", "/v1/orders/o-1:watch", customer(), http.StatusGatewayTimeout},
		{"another caller's watch queued for a slot", "/v1/orders/o-1:watch", http.Header{"X-Api-Key": {bobKey}}, http.StatusGatewayTimeout},
		{"a third", "/v1/orders/o-1:watch", http.Header{"X-Api-Key": {adminKey}}, http.StatusGatewayTimeout},
		{"a unary call on its own connection", "/v1/orders/o-2", customer(), http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if r := do(t, nil, http.MethodGet, gw.url+tt.path, nil, tt.header); r.status != tt.want {
				t.Fatalf("%d %s, want %d", r.status, r.body, tt.want)
			}
			if st := gw.breakers.States()[orderService]; st != "closed" {
				t.Fatalf("order breaker %s, want closed: nothing reached the upstream", st)
			}
		})
	}
	release()
	if _, err := hold.Recv(); status.Code(err) != codes.Canceled {
		t.Fatalf("held stream after release: %v", err)
	}
}

// getOrder calls GetOrder as key and describes what went wrong, or returns "" on a 200 (it
// runs off the test's goroutine: no t.Fatal).
func getOrder(client *http.Client, url, key string) string {
	req, err := http.NewRequest(http.MethodGet, url+"/v1/orders/o-2", nil)
	if err != nil {
		return err.Error()
	}
	req.Header.Set("X-Api-Key", key)
	resp, err := client.Do(req)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return resp.Status + " " + string(body)
	}
	return ""
}

// TestStreamCapAcrossReload: a reload keeps the open streams of every caller (they were
// admitted under the old configuration and still count under the new one, and their end
// frees their places there); the new cap applies to new streams only, and never cuts one.
func TestStreamCapAcrossReload(t *testing.T) {
	tests := []struct {
		name    string
		streams string // the reloaded streams section
		want    int    // the status of alice's next watch
	}{
		{"same cap", "streams: {max_per_caller: 2}", http.StatusTooManyRequests},
		{"another section changed", "streams: {max_per_caller: 2}\nlimits: {max_body_bytes: 4096}", http.StatusTooManyRequests},
		{"cap raised", "streams: {max_per_caller: 3}", http.StatusOK},
		{"cap lowered", "streams: {max_per_caller: 1}", http.StatusTooManyRequests},
		{"default cap", "", http.StatusOK},
		{"cap off", "streams: {max_per_caller: -1}", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			be := startBackend(t)
			holdWatches(be)
			gw := startGateway(t, baseYAML(be.addr, "streams: {max_per_caller: 2}\n"), Options{})
			gw.waitReady(t)
			client, stops := watchClient(t)
			for range 2 {
				*stops = append(*stops, openWatch(t, client, gw.url, customerKey))
			}
			if err := gw.Reload(parse(t, baseYAML(be.addr, tt.streams+"\n"))); err != nil {
				t.Fatal(err)
			}
			if tt.want == http.StatusOK {
				*stops = append(*stops, openWatch(t, client, gw.url, customerKey))
			} else if r := do(t, client, http.MethodGet, gw.url+"/v1/orders/o-1:watch", nil, customer()); r.status != tt.want {
				t.Fatalf("alice's next watch after the reload: %d, want %d", r.status, tt.want)
			}
			closeWatches(t, gw, stops)
		})
	}
}
