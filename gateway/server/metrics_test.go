package server

import (
	"net/http"
	"strings"
	"testing"

	"context"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRequestAndUpstreamMetrics sends requests through a real gateway to a real gRPC backend
// and reads /metrics: the HTTP request histogram by method, route template and status, and the
// upstream client metrics (go-grpc-middleware's names) by service, method and gRPC code. It
// also checks /metrics answers OpenMetrics (which carries exemplars) when asked for it.
func TestRequestAndUpstreamMetrics(t *testing.T) {
	be := startBackend(t)
	gw := startGateway(t, baseYAML(be.addr, ""), Options{})
	gw.waitReady(t)
	be.setBehave(func(_ context.Context, method string) error {
		if strings.HasSuffix(method, "GetItem") {
			return status.Error(codes.NotFound, "no such item")
		}
		return nil
	})
	do(t, nil, "GET", gw.url+"/v1/orders/o-1", nil, customer())
	do(t, nil, "GET", gw.url+"/v1/orders/o-2", nil, customer())
	do(t, nil, "GET", gw.url+"/v1/inventory/items/sku-x", nil, nil)
	do(t, nil, "GET", gw.url+"/no/such/path", nil, nil)
	r := do(t, nil, "GET", gw.url+PathMetrics, nil, nil)
	body := string(r.body)
	for _, want := range []string{
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="200",http_route="/v1/orders/{id}"} 2`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route="/v1/inventory/items/{sku}"} 1`,
		`http_server_request_duration_seconds_count{http_request_method="GET",http_response_status_code="404",http_route="none"} 1`,
		`grpc_client_started_total{grpc_method="GetOrder",grpc_service="shop.order.v1.OrderService",grpc_type="unary"} 2`,
		`grpc_client_handled_total{grpc_code="OK",grpc_method="GetOrder",grpc_service="shop.order.v1.OrderService",grpc_type="unary"} 2`,
		`grpc_client_handled_total{grpc_code="NotFound",grpc_method="GetItem",grpc_service="shop.inventory.v1.InventoryService",grpc_type="unary"} 1`,
		`grpc_client_handling_seconds_count{grpc_method="GetOrder",grpc_service="shop.order.v1.OrderService",grpc_type="unary"} 2`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Logf("/metrics:\n%s", body)
	}
	om := do(t, nil, "GET", gw.url+PathMetrics, nil, http.Header{"Accept": {"application/openmetrics-text; version=1.0.0"}})
	if ct := om.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(strings.TrimSpace(string(om.body)), "# EOF") {
		t.Errorf("/metrics with OpenMetrics asked for: Content-Type %q, body ending %q", ct, string(om.body[max(0, len(om.body)-20):]))
	}
}
