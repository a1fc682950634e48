package server

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/openapi"
	"github.com/acme/shopgate/internal/shopapi"
)

// TestReference: GET and HEAD of /openapi.json and /docs are public and answered by the gateway
// itself; other methods get 405; docs.enabled: false answers 404; a reload rebuilds the document.
func TestReference(t *testing.T) {
	be := startBackend(t)
	api, err := shopapi.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	g := startGateway(t, baseYAML(be.addr, ""), Options{OpenAPI: api})
	tests := []struct {
		name, method, path string
		status             int
		contentType        string
		allow              string
	}{
		{"document", http.MethodGet, openapi.PathDocument, http.StatusOK, "application/json", ""},
		{"page", http.MethodGet, openapi.PathUI, http.StatusOK, "text/html; charset=utf-8", ""},
		{"asset", http.MethodGet, openapi.PathUIBundle, http.StatusOK, "text/javascript; charset=utf-8", ""},
		{"HEAD", http.MethodHead, openapi.PathUI, http.StatusOK, "text/html; charset=utf-8", ""},
		{"POST the document", http.MethodPost, openapi.PathDocument, http.StatusMethodNotAllowed, "application/json", "GET, HEAD"},
		{"DELETE the page", http.MethodDelete, openapi.PathUI, http.StatusMethodNotAllowed, "application/json", "GET, HEAD"},
		{"a file not served", http.MethodGet, openapi.PathUI + "/swagger-ui.css.map", http.StatusNotFound, "application/json", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := do(t, nil, tt.method, g.url+tt.path, nil, nil) // no credential: public
			if r.status != tt.status || r.header.Get("Content-Type") != tt.contentType || r.header.Get("Allow") != tt.allow {
				t.Fatalf("%s %s: %d %q Allow %q, want %d %q Allow %q", tt.method, tt.path, r.status, r.header.Get("Content-Type"),
					r.header.Get("Allow"), tt.status, tt.contentType, tt.allow)
			}
			if r.header.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id")
			}
			if tt.status == http.StatusOK && r.header.Get("Content-Security-Policy") != openapi.ContentSecurityPolicy {
				t.Errorf("Content-Security-Policy %q", r.header.Get("Content-Security-Policy"))
			}
		})
	}

	rateLimit := func() (map[string]any, string) {
		r := do(t, nil, http.MethodGet, g.url+openapi.PathDocument, nil, nil)
		var doc struct {
			Info  struct{ Title string }
			Paths map[string]map[string]map[string]any
		}
		if err := json.Unmarshal(r.body, &doc); err != nil || doc.Info.Title != shopapi.Title {
			t.Fatalf("the document: %v, title %q", err, doc.Info.Title)
		}
		rl, _ := doc.Paths["/v1/inventory/items"]["get"]["x-shopgate-rate-limit"].(map[string]any)
		return rl, r.header.Get("ETag")
	}
	before, etag := rateLimit()
	if err := g.Reload(parse(t, baseYAML(be.addr, "routes: {shop.inventory.v1.InventoryService/ListItems: {rate_limit: {requests: 7, per: 1s}}}"))); err != nil {
		t.Fatal(err)
	}
	after, etagAfter := rateLimit()
	if after["requests"] != float64(7) || after["per"] != "1s" || etagAfter == etag {
		t.Errorf("after a reload: rate limit %v (was %v), ETag %s (was %s)", after, before, etagAfter, etag)
	}

	if err := g.Reload(parse(t, baseYAML(be.addr, "docs: {enabled: false}"))); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{openapi.PathDocument, openapi.PathUI, openapi.PathUICSS} {
		r := do(t, nil, http.MethodGet, g.url+path, nil, nil)
		if code, _, _ := r.rpcStatus(t); r.status != http.StatusNotFound || code != 5 {
			t.Errorf("docs off: GET %s: %d, code %d, want 404 NOT_FOUND", path, r.status, code)
		}
	}
}

// TestReferencePathsAreTaken: an extra handler may not hide the reference.
func TestReferencePathsAreTaken(t *testing.T) {
	be := startBackend(t)
	for _, path := range []string{openapi.PathDocument, openapi.PathUI, openapi.PathUIInit} {
		_, err := New(parse(t, baseYAML(be.addr, "")), Options{Services: shopapi.Services(), Logger: discardLogger(),
			Handlers: map[string]http.Handler{path: http.NotFoundHandler()}})
		if err == nil || !strings.Contains(err.Error(), "built-in endpoint") {
			t.Errorf("handler at %s: %v, want refused", path, err)
		}
	}
}
