package abuse

import (
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/internal/testclock"
	"github.com/acme/shopgate/internal/testlog"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// closedPort returns an address on which nothing listens.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// fixture is a detector on a fake clock with its logs, metrics and a resolver that trusts the
// loopback proxy, so that tests choose the client address with X-Forwarded-For.
type fixture struct {
	d     *Detector
	clock *testclock.Clock
	logs  *testlog.Buffer
	reg   *prometheus.Registry
}

func newFixture(t *testing.T, cfg Config, clock *testclock.Clock) *fixture {
	t.Helper()
	res, err := clientip.New(clientip.Config{TrustedProxies: []string{"127.0.0.1", "::1"}})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{clock: clock, logs: &testlog.Buffer{}, reg: prometheus.NewRegistry()}
	f.d, err = New(cfg, Options{
		Logger:     slog.New(slog.NewJSONHandler(f.logs, nil)),
		Registerer: f.reg,
		Resolver:   res,
		Now:        clock.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.d.Close() })
	return f
}

// server serves the detector's stage in front of a handler that answers with the status in the
// X-Test-Status header (200 without it) and counts its calls.
type server struct {
	*httptest.Server
	calls atomic.Int64
}

func serve(t *testing.T, d *Detector) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(d.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.calls.Add(1)
		if code := r.Header.Get("X-Test-Status"); code != "" {
			w.Header().Set("Content-Type", "application/json")
			n, _ := strconv.Atoi(code)
			w.WriteHeader(n)
		}
		_, _ = io.WriteString(w, `{}`)
	})))
	t.Cleanup(s.Close)
	return s
}

// get sends one request from client (through the trusted loopback proxy) for which the
// handler answers status, and returns the response with its body read.
func (s *server) get(t *testing.T, client string, status int) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, s.URL+"/v1/orders", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Forwarded-For", client)
	if status != 0 {
		req.Header.Set("X-Test-Status", strconv.Itoa(status))
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}
