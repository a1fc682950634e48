package abuse

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/testclock"
)

// adminDo sends one request to the admin handler over a real server.
func adminDo(t *testing.T, srv *httptest.Server, method, query string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+"/admin/abuse/blocks"+query, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	return resp, body
}

func TestAdminHandler(t *testing.T) {
	t.Parallel()
	f := newFixture(t, Config{MaxFailures: 2}, testclock.New())
	ctx := context.Background()
	for _, a := range []string{"2001:db8::1", "192.0.2.9"} {
		for range 3 {
			f.d.fail(ctx, netip.MustParseAddr(a))
		}
	}
	admin := httptest.NewServer(f.d.AdminHandler())
	t.Cleanup(admin.Close)

	resp, body := adminDo(t, admin, http.MethodGet, "")
	until := f.clock.Now().Add(DefaultBlockFor).UTC().Format(time.RFC3339)
	want := `{"blocks":[{"address":"192.0.2.9","until":"` + until + `","failures":3},` +
		`{"address":"2001:db8::1","until":"` + until + `","failures":3}]}` + "\n"
	if resp.StatusCode != http.StatusOK || string(body) != want || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET: %d %s\nwant %s", resp.StatusCode, body, want)
	}

	tests := []struct {
		name, method, query string
		wantStatus          int
		wantCode            int // google.rpc.Status code of an error body
	}{
		{"lift", http.MethodDelete, "?addr=192.0.2.9", http.StatusNoContent, 0},
		{"lift again", http.MethodDelete, "?addr=192.0.2.9", http.StatusNotFound, 5},
		{"never blocked", http.MethodDelete, "?addr=192.0.2.10", http.StatusNotFound, 5},
		{"mapped IPv6 is the IPv4", http.MethodDelete, "?addr=" + url.QueryEscape("::ffff:192.0.2.9"), http.StatusNotFound, 5},
		{"not an IP", http.MethodDelete, "?addr=example.com", http.StatusBadRequest, 3},
		{"a prefix", http.MethodDelete, "?addr=" + url.QueryEscape("192.0.2.0/24"), http.StatusBadRequest, 3},
		{"a zone", http.MethodDelete, "?addr=" + url.QueryEscape("fe80::1%eth0"), http.StatusBadRequest, 3},
		{"missing", http.MethodDelete, "", http.StatusBadRequest, 3},
		{"twice", http.MethodDelete, "?addr=192.0.2.9&addr=2001:db8::1", http.StatusBadRequest, 3},
		{"method", http.MethodPost, "", http.StatusMethodNotAllowed, 12},
		{"lift v6", http.MethodDelete, "?addr=" + url.QueryEscape("2001:DB8:0::1"), http.StatusNoContent, 0},
	}
	for _, tt := range tests {
		resp, body := adminDo(t, admin, tt.method, tt.query)
		if resp.StatusCode != tt.wantStatus {
			t.Fatalf("%s: %d, want %d (%s)", tt.name, resp.StatusCode, tt.wantStatus, body)
		}
		if tt.wantCode != 0 {
			var st statusBody
			if err := json.Unmarshal(body, &st); err != nil || st.Code != tt.wantCode {
				t.Fatalf("%s: body %s, want a google.rpc.Status of code %d", tt.name, body, tt.wantCode)
			}
		}
		if tt.wantStatus == http.StatusMethodNotAllowed && !strings.Contains(resp.Header.Get("Allow"), "DELETE") {
			t.Fatalf("%s: Allow %q", tt.name, resp.Header.Get("Allow"))
		}
	}
	if resp, body := adminDo(t, admin, http.MethodGet, ""); string(body) != `{"blocks":[]}`+"\n" {
		t.Fatalf("GET after the lifts: %d %s", resp.StatusCode, body)
	}
	if f.logs.Count("client address block lifted") != 2 {
		t.Fatal("a lift is not logged")
	}
}

// FuzzAdminAddr: whatever addr an operator sends, the handler answers 204, 404 or 400, and
// lifts only the address it names.
func FuzzAdminAddr(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "::1", "::ffff:192.0.2.1", "fe80::1%eth0", "", " 192.0.2.1 ", "1.2.3.4/8", "[::1]", "1.2.3.4:80", "\x00", "01.2.3.4"} {
		f.Add(s)
	}
	d, err := New(Config{MaxFailures: 1}, Options{})
	if err != nil {
		f.Fatal(err)
	}
	h := d.AdminHandler()
	keep := netip.MustParseAddr("203.0.113.250")
	f.Fuzz(func(t *testing.T, addr string) {
		for range 2 {
			d.fail(context.Background(), keep)
		}
		req := httptest.NewRequest(http.MethodDelete, "/admin/abuse/blocks?addr="+url.QueryEscape(addr), nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusNoContent:
			if a, err := netip.ParseAddr(strings.TrimSpace(addr)); err != nil || a.Unmap() != keep {
				t.Fatalf("addr %q lifted a block it does not name", addr)
			}
		case http.StatusNotFound, http.StatusBadRequest:
		default:
			t.Fatalf("addr %q: status %d", addr, rec.Code)
		}
	})
}
