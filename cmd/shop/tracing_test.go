package main

import (
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/internal/devkey"
	"github.com/acme/shopgate/internal/telemetry/otlptest"
)

// TestStackTraces runs the single-process stack with OTLP over gRPC to an in-process receiver
// and OTEL_SERVICE_NAME set: one order's spans, flushed at the stop, come from the gateway,
// order, payment and inventory parts, each under its own service name, in the client's trace.
func TestStackTraces(t *testing.T) {
	rcv := otlptest.New(t)
	for k, v := range map[string]string{
		"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc", "OTEL_EXPORTER_OTLP_ENDPOINT": rcv.GRPCEndpoint(),
		"OTEL_SERVICE_NAME": "shop", "OTEL_TRACES_SAMPLER": "", "OTEL_TRACES_SAMPLER_ARG": "",
	} {
		t.Setenv(k, v)
	}
	data := t.TempDir()
	st := startStack(t, data)
	stopped := false
	defer func() {
		if !stopped {
			st.stop(t)
		}
	}()
	key, err := devkey.LoadOrCreate(filepath.Join(data, "devkeys"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := key.Mint(devkey.Claims{Subject: "alice", Roles: []string{"customer"}})
	if err != nil {
		t.Fatal(err)
	}
	const traceID = "0af7651916cd43dd8448eb211c80319c"
	req, err := http.NewRequest("POST", st.base+"/v1/orders", strings.NewReader(`{"items":[{"sku":"sku-apple","quantity":1}]}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Traceparent", "00-"+traceID+"-b7ad6b7169203331-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var o orderJSON
	if resp.StatusCode != 200 || json.Unmarshal(b, &o) != nil {
		t.Fatalf("create order: %d %s", resp.StatusCode, b)
	}
	if final := waitFinal(t, st, o.ID, token); final.Status != "ORDER_STATUS_CONFIRMED" {
		t.Fatalf("order %s", final.Status)
	}
	st.stop(t) // waits for the handlers in progress, then flushes every part's spans
	stopped = true
	services := map[string]int{}
	for _, sp := range rcv.Trace(traceID) {
		services[sp.Service]++
	}
	for _, want := range []string{"gateway", "order", "payment", "inventory"} {
		if services[want] == 0 {
			t.Errorf("no span of %s in the order's trace: %v", want, services)
		}
	}
	if services["shop"] != 0 {
		t.Errorf("a part took OTEL_SERVICE_NAME as its name: %v", services)
	}
}
