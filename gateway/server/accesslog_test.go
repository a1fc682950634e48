package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestAccessLogWriter: with Options.AccessLogWriter every request, routed or not, is one JSON
// line there with its rpc, status and the X-Request-Id the client got back, and the credential
// appears nowhere.
func TestAccessLogWriter(t *testing.T) {
	t.Parallel()
	be := startBackend(t)
	var out syncBuffer
	gw := startGateway(t, baseYAML(be.addr, ""), Options{AccessLogWriter: &out})
	ok := do(t, nil, http.MethodGet, gw.url+"/v1/orders/o-1", nil, customer())
	missing := do(t, nil, http.MethodGet, gw.url+"/v1/nowhere", nil, nil)
	tests := []struct {
		reply  reply
		path   string
		rpc    string
		status int
	}{
		{ok, "/v1/orders/o-1", "/shop.order.v1.OrderService/GetOrder", ok.status},
		{missing, "/v1/nowhere", "", http.StatusNotFound},
	}
	// A line is written once its response is complete, so it may trail the client's read.
	var lines []map[string]any
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if lines = out.lines(); len(lines) >= len(tests) || time.Now().After(deadline) {
			break
		}
	}
	if len(lines) != len(tests) {
		t.Fatalf("%d access lines, want %d: %v", len(lines), len(tests), lines)
	}
	byPath := map[any]map[string]any{} // the lines may come in either order
	for _, l := range lines {
		byPath[l["path"]] = l
	}
	for i, tt := range tests {
		l := byPath[tt.path]
		if l["msg"] != "request" || l["path"] != tt.path || l["rpc"] != tt.rpc || l["status"] != float64(tt.status) ||
			l["request_id"] == "" || l["request_id"] != tt.reply.header.Get("X-Request-Id") || l["client_ip"] != "127.0.0.1" {
			t.Errorf("line %d = %v, want path %s rpc %q status %d and the response's request id", i, l, tt.path, tt.rpc, tt.status)
		}
		if b, _ := json.Marshal(l); strings.Contains(string(b), customerKey) {
			t.Errorf("line %d carries the API key: %s", i, b)
		}
	}
}
