package openapi_test

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/openapi"
)

func TestServe(t *testing.T) {
	doc := shopDocument(t, exampleConfig(t))
	serve := func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == openapi.PathDocument {
			doc.ServeHTTP(w, r)
			return
		}
		openapi.ServeUI(w, r)
	}
	tests := []struct {
		path, contentType, contains string
	}{
		{openapi.PathDocument, "application/json", `"openapi": "3.0.3"`},
		{openapi.PathUI, "text/html; charset=utf-8", `src="docs/init.js"`},
		{openapi.PathUIInit, "text/javascript; charset=utf-8", `url: "openapi.json"`},
		{openapi.PathUIBundle, "text/javascript; charset=utf-8", "SwaggerUIBundle"},
		{openapi.PathUICSS, "text/css; charset=utf-8", ".swagger-ui"},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if !openapi.IsPath(tt.path) {
				t.Errorf("IsPath(%q) = false", tt.path)
			}
			rec := httptest.NewRecorder()
			serve(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			h := rec.Header()
			if rec.Code != http.StatusOK || h.Get("Content-Type") != tt.contentType || !strings.Contains(rec.Body.String(), tt.contains) {
				t.Fatalf("GET %s: %d %q, body holds %q: %v", tt.path, rec.Code, h.Get("Content-Type"), tt.contains, strings.Contains(rec.Body.String(), tt.contains))
			}
			if h.Get("Content-Security-Policy") != openapi.ContentSecurityPolicy || h.Get("X-Content-Type-Options") != "nosniff" {
				t.Errorf("security headers: %v", h)
			}
			etag := h.Get("ETag")
			if !strings.HasPrefix(etag, `"`) || strings.HasPrefix(etag, "W/") {
				t.Errorf("ETag %q: want a strong one", etag)
			}
			head := httptest.NewRecorder()
			serve(head, httptest.NewRequest(http.MethodHead, tt.path, nil))
			if head.Code != http.StatusOK || head.Body.Len() != 0 || head.Header().Get("ETag") != etag {
				t.Errorf("HEAD: %d, %d body bytes, ETag %q", head.Code, head.Body.Len(), head.Header().Get("ETag"))
			}
			req := httptest.NewRequest(http.MethodGet, tt.path, nil)
			req.Header.Set("If-None-Match", etag)
			again := httptest.NewRecorder()
			serve(again, req)
			if again.Code != http.StatusNotModified || again.Body.Len() != 0 {
				t.Errorf("If-None-Match: %d with %d bytes, want 304 and none", again.Code, again.Body.Len())
			}
		})
	}
	rec := httptest.NewRecorder()
	openapi.ServeUI(rec, httptest.NewRequest(http.MethodGet, openapi.PathUI+"/swagger-ui.js.map", nil))
	if rec.Code != http.StatusNotFound || openapi.IsPath(openapi.PathUI+"/swagger-ui.js.map") {
		t.Errorf("a file not vendored: %d", rec.Code)
	}
}

// TestVendoredUI checks the vendored Swagger UI files against SHA256SUMS, which
// `make vendor-docs-ui` checks against the npm package: offline, what is embedded is what the
// pinned version ships.
func TestVendoredUI(t *testing.T) {
	f, err := os.Open(filepath.Join("ui", "SHA256SUMS"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		sum, name, ok := strings.Cut(sc.Text(), "  ")
		if !ok {
			t.Fatalf("SHA256SUMS: bad line %q", sc.Text())
		}
		b, err := os.ReadFile(filepath.Join("ui", name))
		if err != nil {
			t.Fatal(err)
		}
		if got := sha256.Sum256(b); hex.EncodeToString(got[:]) != sum {
			t.Errorf("ui/%s differs from swagger-ui-dist's: run make vendor-docs-ui", name)
		}
	}
	if n < 3 {
		t.Errorf("SHA256SUMS lists %d files", n)
	}
}
