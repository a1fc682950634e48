package edge_test

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/edge"
)

// slogLine is the line slog.JSONHandler writes for e, as AccessLog logs it.
func slogLine(t testing.TB, e *edge.AccessEntry) []byte {
	var buf bytes.Buffer
	rec := slog.NewRecord(e.Time, slog.LevelInfo, "request", 0)
	rec.AddAttrs(slog.String("method", e.Method), slog.String("path", e.Path), slog.Int("status", e.Status),
		slog.Int64("bytes", e.Bytes), slog.Duration("duration", e.Duration), slog.String("rpc", e.RPC),
		slog.String("request_id", e.RequestID), slog.String("client_ip", e.ClientIP.String()))
	if e.Pool != "" {
		rec.AddAttrs(slog.String("pool", e.Pool))
	}
	if e.Trace.IsValid() {
		rec.AddAttrs(slog.String("trace_id", e.Trace.TraceID().String()), slog.String("span_id", e.Trace.SpanID().String()))
	}
	if err := slog.NewJSONHandler(&buf, nil).Handle(context.Background(), rec); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestAppendAccessJSONIsSlogsLine(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 12, 2, 7, 1, 30, 120_000_000, time.UTC)
	tests := []struct {
		name string
		e    edge.AccessEntry
	}{
		{"plain", edge.AccessEntry{Time: at, Method: "GET", Path: "/v1/inventory/items/sku-1", Status: 200, Bytes: 93,
			Duration: 1234567, RPC: "/shop.inventory.v1.InventoryService/GetItem", RequestID: "abc-1", ClientIP: netip.MustParseAddr("10.0.0.7")}},
		{"pool", edge.AccessEntry{Time: at, Method: "GET", Path: "/v1/inventory/items/sku-1", Status: 503, Bytes: 56,
			Duration: 1234567, RPC: "/shop.inventory.v1.InventoryService/GetItem", RequestID: "abc-2", ClientIP: netip.MustParseAddr("10.0.0.7"), Pool: "canary"}},
		{"traced, pool", edge.AccessEntry{Time: at, Method: "GET", Path: "/v1/orders/o-1", Status: 200, RequestID: "abc-3", Pool: "canary", Trace: testSpan}},
		{"traced", edge.AccessEntry{Time: at, Method: "GET", Path: "/v1/orders/o-1", Status: 200, RequestID: "abc-4", Trace: testSpan}},
		{"no route, no ip", edge.AccessEntry{Time: at.Add(time.Nanosecond), Method: "POST", Path: "/nowhere", Status: 404}},
		{"escapes", edge.AccessEntry{Time: time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.FixedZone("X", 3600)), Method: "G\"ET",
			Path: "/a\\b\n\r\t\x00\x1f\x7f<>&\u2028\u2029\xff\xfeé日本", Status: 599, Bytes: -1, Duration: -5,
			RPC: "\x01", RequestID: "\"", ClientIP: netip.MustParseAddr("::1")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, want := edge.AppendAccessJSON(nil, &tt.e), slogLine(t, &tt.e)
			if !bytes.Equal(got, want) {
				t.Errorf("line\n got %s\nwant %s", got, want)
			}
		})
	}
}

// FuzzAppendAccessJSON: for any client-chosen path and request id the line is byte for byte
// slog's, so it is valid JSON with the same escaping.
func FuzzAppendAccessJSON(f *testing.F) {
	f.Add("/v1/orders", "req-1", int64(1700000000123456789))
	f.Add("/\xff\u2028\"\\\x00", "", int64(0))
	f.Fuzz(func(t *testing.T, path, id string, nanos int64) {
		e := edge.AccessEntry{Time: time.Unix(0, nanos).UTC(), Method: "GET", Path: path, Status: 200, RequestID: id}
		if got, want := edge.AppendAccessJSON(nil, &e), slogLine(t, &e); !bytes.Equal(got, want) {
			t.Errorf("line\n got %s\nwant %s", got, want)
		}
	})
}

func TestAccessLogJSONWritesOneLinePerRequest(t *testing.T) {
	t.Parallel()
	var out syncBuffer
	h := edge.AccessLogJSON(&out, nil, nil)(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusTeapot)
		_, _ = w.Write([]byte("short and stout"))
	}))
	req := httptest.NewRequest("GET", "/pot", nil)
	req.RemoteAddr = "192.0.2.9:4000"
	h.ServeHTTP(httptest.NewRecorder(), req)
	line := out.String()
	for _, want := range []string{`"msg":"request"`, `"path":"/pot"`, `"status":418`, `"bytes":15`, `"client_ip":"192.0.2.9"`} {
		if !bytes.Contains([]byte(line), []byte(want)) {
			t.Errorf("line %s lacks %s", line, want)
		}
	}
	if n := bytes.Count([]byte(line), []byte("\n")); n != 1 {
		t.Errorf("%d lines, want 1", n)
	}
}
