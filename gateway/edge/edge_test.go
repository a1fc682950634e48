package edge_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"strings"
	"sync"
	"testing"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/metrics"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// stack is the edge as the gateway orders it, over h.
func stack(logger *slog.Logger, m *metrics.Metrics, max int64, h http.Handler) http.Handler {
	h = edge.BodyLimit(max)(h)
	h = edge.AccessLog(logger, m, nil)(h)
	h = edge.RequestID(h)
	return edge.Recover(logger)(h)
}

func TestRecover(t *testing.T) {
	logs := &syncBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	mux := http.NewServeMux()
	mux.HandleFunc("/panic", func(http.ResponseWriter, *http.Request) { panic("boom at 10.0.0.1") })
	mux.HandleFunc("/panic-after-write", func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		panic("late")
	})
	mux.HandleFunc("/ok", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv := httptest.NewServer(stack(logger, nil, 0, mux))
	defer srv.Close()
	client := srv.Client()

	var conns []string
	get := func(path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req = req.WithContext(httptrace.WithClientTrace(req.Context(), &httptrace.ClientTrace{
			GotConn: func(info httptrace.GotConnInfo) { conns = append(conns, info.Conn.LocalAddr().String()) },
		}))
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	tests := []struct {
		path   string
		status int
	}{
		{"/panic", 500},
		{"/ok", 200},
		{"/panic-after-write", 202},
		{"/ok", 200},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			code, body := get(tt.path)
			if code != tt.status {
				t.Fatalf("status = %d, want %d", code, tt.status)
			}
			if code == 500 {
				var st struct {
					Code    int    `json:"code"`
					Message string `json:"message"`
				}
				if err := json.Unmarshal([]byte(body), &st); err != nil || st.Code != 13 || st.Message != "internal error" {
					t.Errorf("500 body = %q, want a sanitized google.rpc.Status", body)
				}
			}
		})
	}
	if conns[0] != conns[1] {
		t.Errorf("the connection was dropped after a panic: %v", conns)
	}
	out := logs.String()
	if !strings.Contains(out, "panic serving request") || !strings.Contains(out, "goroutine") {
		t.Errorf("the panic was not logged with its stack:\n%s", out)
	}
	if !strings.Contains(out, `"status":500`) {
		t.Errorf("the access log did not record the panic as 500:\n%s", out)
	}
}

func TestRecoverRepanicsAbortHandler(t *testing.T) {
	h := edge.Recover(slog.New(slog.NewJSONHandler(io.Discard, nil)))(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic(http.ErrAbortHandler)
	}))
	defer func() {
		if v := recover(); v != http.ErrAbortHandler {
			t.Fatalf("recovered %v, want http.ErrAbortHandler re-panicked", v)
		}
	}()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	t.Fatal("ErrAbortHandler was swallowed")
}

func TestAccessLogAndMetrics(t *testing.T) {
	logs := &syncBuffer{}
	reg := prometheus.NewRegistry()
	m, err := metrics.New(metrics.Config{}, reg)
	if err != nil {
		t.Fatal(err)
	}
	h := stack(slog.New(slog.NewJSONHandler(logs, nil)), m, 0, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := edge.StateFrom(r.Context())
		st.RPC = "/pkg.Svc/Get"
		st.Route = &policy.Route{HTTPMethod: "GET", Path: "/v1/x/{id}", RPC: st.RPC}
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "12345")
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	req, _ := http.NewRequest("GET", srv.URL+"/v1/x?q=secret", nil)
	req.Header.Set("X-Request-Id", "rid-1")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	var line map[string]any
	if err := json.Unmarshal([]byte(strings.TrimSpace(logs.String())), &line); err != nil {
		t.Fatalf("log %q: %v", logs.String(), err)
	}
	want := map[string]any{"msg": "request", "method": "GET", "path": "/v1/x", "status": float64(418), "bytes": float64(5), "rpc": "/pkg.Svc/Get", "request_id": "rid-1", "client_ip": "127.0.0.1"}
	for k, v := range want {
		if line[k] != v {
			t.Errorf("log %s = %v, want %v", k, line[k], v)
		}
	}
	if _, ok := line["duration"]; !ok {
		t.Error("log has no duration")
	}
	series := `http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="418",http_route="/v1/x/{id}"} 1`
	if got := scrape(t, reg, ""); !strings.Contains(got, series) {
		t.Errorf("metrics lack %s:\n%s", series, got)
	}
}

func TestBodyLimit(t *testing.T) {
	var readErr error
	var tooLarge bool
	h := stack(nil, nil, 10, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, readErr = io.ReadAll(r.Body)
		tooLarge = edge.BodyTooLarge(r.Context())
		w.WriteHeader(http.StatusNoContent)
	}))
	srv := httptest.NewServer(h)
	defer srv.Close()
	tests := []struct {
		name     string
		body     io.Reader
		status   int
		tooLarge bool
	}{
		{"under, sized", strings.NewReader("12345"), 204, false},
		{"at the limit, sized", strings.NewReader("1234567890"), 204, false},
		{"over, sized: refused before the handler", strings.NewReader("12345678901"), 413, false},
		{"at the limit, chunked", io.MultiReader(strings.NewReader("1234567890")), 204, false},
		{"over, chunked: the read fails", io.MultiReader(strings.NewReader("12345678901")), 204, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			readErr, tooLarge = nil, false
			resp, err := srv.Client().Post(srv.URL, "application/json", tt.body)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status = %d, want %d", resp.StatusCode, tt.status)
			}
			if tooLarge != tt.tooLarge {
				t.Errorf("BodyTooLarge = %v, want %v", tooLarge, tt.tooLarge)
			}
			var mbe *http.MaxBytesError
			if tt.tooLarge != errors.As(readErr, &mbe) {
				t.Errorf("read error = %v", readErr)
			}
		})
	}
}

func TestValidRequestID(t *testing.T) {
	tests := []struct {
		id   string
		want bool
	}{
		{"a", true},
		{"Abc-123_x.y:z", true},
		{strings.Repeat("z", 128), true},
		{strings.Repeat("z", 129), false},
		{"", false},
		{"a b", false},
		{"a\nb", false},
		{"é", false},
		{"a/b", false},
	}
	for _, tt := range tests {
		t.Run(tt.id, func(t *testing.T) {
			if got := edge.ValidRequestID(tt.id); got != tt.want {
				t.Errorf("ValidRequestID(%q) = %v, want %v", tt.id, got, tt.want)
			}
		})
	}
}

// FuzzRequestID: whatever a client sends, the id on the response is valid, and it is the
// client's exactly when that was valid.
func FuzzRequestID(f *testing.F) {
	for _, s := range []string{"abc", "", "a b", strings.Repeat("x", 129), "\x00", "ü", "a:b.c_d-e"} {
		f.Add(s)
	}
	h := edge.RequestID(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	f.Fuzz(func(t *testing.T, sent string) {
		req := httptest.NewRequest("GET", "/", nil)
		req.Header["X-Request-Id"] = []string{sent}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		got := rec.Header().Get("X-Request-Id")
		if !edge.ValidRequestID(got) {
			t.Fatalf("response id %q is not valid", got)
		}
		if (got == sent) != edge.ValidRequestID(sent) {
			t.Fatalf("sent %q, got %q", sent, got)
		}
		if fwd := req.Header.Values("X-Request-Id"); len(fwd) != 1 || fwd[0] != got {
			t.Fatalf("forwarded %q, want exactly [%q]", fwd, got)
		}
	})
}

func TestGeneratedIDsAreUnique(t *testing.T) {
	h := edge.RequestID(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	seen := map[string]bool{}
	for range 1000 {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
		id := rec.Header().Get("X-Request-Id")
		if seen[id] {
			t.Fatalf("id %q generated twice", id)
		}
		seen[id] = true
	}
}

// TestStateIsTheContext checks that the State answers for itself and, once routed, for the
// route (policy.FromContext), and delegates everything else to the request's context.
func TestStateIsTheContext(t *testing.T) {
	type key struct{}
	rt := &policy.Route{RPC: "/a.B/C"}
	var before, after *policy.Route
	var inherited any
	h := edge.RequestID(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		before = policy.FromContext(ctx)
		edge.StateFrom(ctx).Route = rt
		after = policy.FromContext(ctx)
		inherited = ctx.Value(key{})
	}))
	req := httptest.NewRequest("GET", "/", nil)
	req = req.WithContext(context.WithValue(req.Context(), key{}, "parent value"))
	h.ServeHTTP(httptest.NewRecorder(), req)
	if before != nil || after != rt || inherited != "parent value" {
		t.Errorf("before = %v, after = %v, inherited = %v", before, after, inherited)
	}
}

// TestWithIdentity: inside the edge (also below a context grpc-gateway or a stage derived) the
// State carries the identity without a copy of the request; outside it a new context does.
func TestWithIdentity(t *testing.T) {
	t.Parallel()
	type key struct{}
	id := identity.Identity{Subject: "alice", Method: identity.MethodJWT}
	check := func(t *testing.T, r *http.Request, wantSame bool) {
		t.Helper()
		r2 := edge.WithIdentity(r, id)
		if same := r2 == r; same != wantSame {
			t.Errorf("request kept = %v, want %v", same, wantSame)
		}
		if got, ok := identity.FromContext(r2.Context()); !ok || got.Subject != "alice" {
			t.Errorf("identity = %+v, %v", got, ok)
		}
		if v := r2.Context().Value(key{}); v != "parent value" {
			t.Errorf("parent value = %v", v)
		}
	}
	base := func() *http.Request {
		req := httptest.NewRequest("GET", "/", nil)
		return req.WithContext(context.WithValue(req.Context(), key{}, "parent value"))
	}
	inEdge := func(name string, derive func(*http.Request) *http.Request) {
		t.Run(name, func(t *testing.T) {
			edge.RequestID(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
				check(t, derive(r), true)
			})).ServeHTTP(httptest.NewRecorder(), base())
		})
	}
	type other struct{}
	inEdge("in the edge", func(r *http.Request) *http.Request { return r })
	inEdge("below a value context", func(r *http.Request) *http.Request { // as grpc-gateway's route pattern
		return r.WithContext(context.WithValue(r.Context(), other{}, 1))
	})
	inEdge("below a cancel context", func(r *http.Request) *http.Request {
		ctx, cancel := context.WithCancel(r.Context())
		t.Cleanup(cancel)
		return r.WithContext(ctx)
	})
	t.Run("outside the edge", func(t *testing.T) { check(t, base(), false) })
}
