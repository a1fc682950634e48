package cors

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzPreflight feeds arbitrary Origin, Access-Control-Request-Method and
// Access-Control-Request-Headers values to the preflight parser: it never panics, never
// forwards a preflight, and grants CORS only to an allowed origin asking for allowed methods
// and headers.
func FuzzPreflight(f *testing.F) {
	f.Add(shop, "POST", "authorization, content-type")
	f.Add(evil, "GET", "")
	f.Add("HTTPS://SHOP.EXAMPLE.COM", "get", "X-User-Id")
	f.Add(shop, "PUT", ",,, ,Idempotency-Key,")
	f.Add("null", "DELETE", "content-type\x00")
	s, err := New(Config{AllowedOrigins: []string{shop}, AllowCredentials: true}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	h := s.Middleware(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("a preflight was forwarded")
	}))
	f.Fuzz(func(t *testing.T, origin, method, headers string) {
		if origin == "" || method == "" {
			return // not a preflight
		}
		req := httptest.NewRequest(http.MethodOptions, "/v1/orders", nil)
		req.Header["Origin"] = []string{origin}
		req.Header["Access-Control-Request-Method"] = []string{method}
		req.Header["Access-Control-Request-Headers"] = []string{headers}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != http.StatusNoContent {
			t.Fatalf("status %d", w.Code)
		}
		granted := w.Header().Get("Access-Control-Allow-Origin")
		if granted == "" {
			return
		}
		if !strings.EqualFold(granted, shop) || granted != origin {
			t.Fatalf("granted %q to origin %q", granted, origin)
		}
		if _, ok := s.methods[method]; !ok {
			t.Fatalf("granted method %q", method)
		}
		for name := range strings.SplitSeq(headers, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			if _, ok := s.headers[name]; name != "" && !ok {
				t.Fatalf("granted header %q", name)
			}
		}
	})
}
