package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/routes"
)

// TestAdminRoutes: GET /admin/routes lists the running route table with each policy value's
// layer and whether the route has an upstream; an admin only (a customer 403, nobody 401).
func TestAdminRoutes(t *testing.T) {
	be := startBackend(t)
	// The storefront has no upstream; overrides at both YAML layers.
	yaml := strings.Replace(baseYAML(be.addr, `
routes:
  shop.order.v1.OrderService: {timeout: 3s}
  shop.order.v1.OrderService/CancelOrder: {timeout: 4s, roles: [admin]}
`), "  shop.storefront.v1.StorefrontService: {addresses: [\""+be.addr+"\"]}\n", "", 1)
	g := startGateway(t, yaml, Options{})

	tests := []struct {
		name   string
		header http.Header
		want   int
	}{
		{"anonymous", nil, http.StatusUnauthorized},
		{"customer", customer(), http.StatusForbidden},
		{"admin", http.Header{"X-Api-Key": {adminKey}}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, nil, "GET", g.url+PathRoutes, nil, tt.header)
			if r.status != tt.want {
				t.Fatalf("status %d %s, want %d", r.status, r.body, tt.want)
			}
			if tt.want != http.StatusOK {
				if code, _, _ := r.rpcStatus(t); code == 0 {
					t.Errorf("refusal without a google.rpc.Status: %s", r.body)
				}
				return
			}
			var got struct{ Routes []routes.Entry }
			if err := json.Unmarshal(r.body, &got); err != nil {
				t.Fatalf("%v: %s", err, r.body)
			}
			byRPC := map[string]routes.Entry{}
			for _, e := range got.Routes {
				byRPC[e.RPC] = e
			}
			checks := []struct {
				rpc, field string
				value      any
				from       routes.Layer
			}{
				{"/shop.order.v1.OrderService/CancelOrder", "timeout", "4s", routes.LayerYAMLRPC},
				{"/shop.order.v1.OrderService/GetOrder", "timeout", "3s", routes.LayerYAMLService},
				{"/shop.payment.v1.PaymentService/GetPayment", "timeout", "2s", routes.LayerProtoService},
				{"/shop.inventory.v1.InventoryService/GetItem", "auth", "none", routes.LayerProtoMethod},
				{"/shop.order.v1.OrderService/GetOrder", "auth", "required", routes.LayerDefault},
			}
			for _, c := range checks {
				v, ok := byRPC[c.rpc].Policy[c.field]
				if !ok || v.Value != c.value || v.From != c.from {
					t.Errorf("%s %s = %+v, want %v from %s", c.rpc, c.field, v, c.value, c.from)
				}
			}
			if e := byRPC["/shop.order.v1.OrderService/CancelOrder"]; e.Method != "POST" || e.Path != "/v1/orders/{id}:cancel" || !e.Upstream {
				t.Errorf("CancelOrder: %+v", e)
			}
			if e, ok := byRPC["/shop.storefront.v1.StorefrontService/GetHome"]; !ok || e.Upstream {
				t.Errorf("GetHome, whose service has no upstream: %+v (listed %v)", e, ok)
			}
		})
	}
	if r := do(t, nil, "DELETE", g.url+PathRoutes, nil, http.Header{"X-Api-Key": {adminKey}}); r.status != http.StatusMethodNotAllowed {
		t.Errorf("DELETE: %d %s, want 405", r.status, r.body)
	}
}
