package ipfilter

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/gateway/policy"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// withRoute stands in for the router: it stores rt in the request's context.
func withRoute(rt *policy.Route, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(policy.NewContext(r.Context(), rt)))
	})
}

func prefixes(t *testing.T, values ...string) []netip.Prefix {
	t.Helper()
	p, err := ParsePrefixes("test", values)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cfg        Config
		trusted    []string // proxies trusted by the resolver; the test client is 127.0.0.1
		routeAllow []string
		routeDeny  []string
		xff        string
		wantStatus int
	}{
		{"no rules", Config{}, nil, nil, nil, "", 200},
		{"global allow admits loopback", Config{Allow: []string{"127.0.0.0/8"}}, nil, nil, nil, "", 200},
		{"global allow refuses others", Config{Allow: []string{"10.0.0.0/8"}}, nil, nil, nil, "", 403},
		{"global deny refuses", Config{Deny: []string{"127.0.0.1"}}, nil, nil, nil, "", 403},
		{"deny wins over allow", Config{Allow: []string{"127.0.0.0/8"}, Deny: []string{"127.0.0.1/32"}}, nil, nil, nil, "", 403},
		{"xff ignored without trusted proxy", Config{Deny: []string{"203.0.113.0/24"}}, nil, nil, nil, "203.0.113.5", 200},
		{"xff through trusted proxy denied", Config{Deny: []string{"203.0.113.0/24"}}, []string{"127.0.0.1"}, nil, nil, "203.0.113.5", 403},
		{"xff through trusted proxy allowed", Config{Allow: []string{"198.51.100.0/24"}}, []string{"127.0.0.1"}, nil, nil, "198.51.100.1", 200},
		{"spoofed xff left of proxy hop", Config{Allow: []string{"198.51.100.0/24"}}, []string{"127.0.0.1", "10.0.0.0/8"}, nil, nil, "198.51.100.1, 203.0.113.5, 10.0.0.1", 403},
		{"malformed xff falls back to peer", Config{Deny: []string{"127.0.0.1"}}, []string{"127.0.0.1"}, nil, nil, "bogus", 403},
		{"ipv6 client denied", Config{Deny: []string{"2001:db8::/32"}}, []string{"127.0.0.1"}, nil, nil, "2001:db8::7", 403},
		{"ipv6 client allowed", Config{Allow: []string{"2001:db8::/32"}}, []string{"127.0.0.1"}, nil, nil, "[2001:db8::7]:443", 200},
		{"ipv4-mapped client matches ipv4 rule", Config{Deny: []string{"203.0.113.0/24"}}, []string{"127.0.0.1"}, nil, nil, "::ffff:203.0.113.5", 403},
		{"route allow refuses", Config{}, nil, []string{"10.0.0.0/8"}, nil, "", 403},
		{"route allow admits", Config{}, nil, []string{"127.0.0.0/8"}, nil, "", 200},
		{"route deny refuses", Config{}, nil, nil, []string{"127.0.0.0/8"}, "", 403},
		{"route deny of a single address refuses", Config{}, nil, nil, []string{"127.0.0.1"}, "", 403},
		{"route allow of a mapped prefix admits ipv4", Config{}, nil, []string{"::ffff:127.0.0.0/104"}, nil, "", 200},
		{"route deny wins over route allow", Config{}, nil, []string{"127.0.0.0/8"}, []string{"127.0.0.1/32"}, "", 403},
		{"global admits, route refuses", Config{Allow: []string{"127.0.0.0/8"}}, nil, nil, []string{"127.0.0.1/32"}, "", 403},
		{"route admits, global refuses", Config{Deny: []string{"127.0.0.1"}}, nil, []string{"127.0.0.0/8"}, nil, "", 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := clientip.New(clientip.Config{TrustedProxies: tt.trusted})
			if err != nil {
				t.Fatal(err)
			}
			reg := prometheus.NewRegistry()
			f, err := New(tt.cfg, Options{Resolver: res, Registerer: reg})
			if err != nil {
				t.Fatal(err)
			}
			var reached atomic.Int64
			upstream := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				reached.Add(1)
				_, _ = io.WriteString(w, "ok")
			})
			rt := &policy.Route{RPC: "/shop.test.v1.T/Get", Policy: policy.Policy{
				AllowCIDRs: prefixes(t, tt.routeAllow...), DenyCIDRs: prefixes(t, tt.routeDeny...),
			}}
			srv := httptest.NewServer(f.Middleware(withRoute(rt, f.RouteMiddleware(upstream))))
			defer srv.Close()

			req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(`{"x":1}`))
			if tt.xff != "" {
				req.Header.Set("X-Forwarded-For", tt.xff)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status = %d, want %d (body %s)", resp.StatusCode, tt.wantStatus, body)
			}
			if tt.wantStatus == 200 {
				if reached.Load() != 1 {
					t.Fatalf("upstream reached %d times, want 1", reached.Load())
				}
				return
			}
			if reached.Load() != 0 {
				t.Fatalf("refused request reached the upstream")
			}
			var st struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &st); err != nil || st.Code != 7 || st.Message != "client address not allowed" {
				t.Fatalf("body = %s (err %v), want PERMISSION_DENIED status", body, err)
			}
			if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type = %q", ct)
			}
			if n := testutil.ToFloat64(f.denied.WithLabelValues("global")) + testutil.ToFloat64(f.denied.WithLabelValues("route")); n != 1 {
				t.Fatalf("denied counter = %v, want 1", n)
			}
		})
	}
}

func TestUnknownAddress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  Config
		want bool
	}{
		{"allow list refuses unknown", Config{Allow: []string{"10.0.0.0/8"}}, false},
		{"deny list admits unknown", Config{Deny: []string{"10.0.0.0/8"}}, true},
		{"no rules admit unknown", Config{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, err := New(tt.cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.Allowed(netip.Addr{}, nil); got != tt.want {
				t.Fatalf("Allowed(unknown) = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestNewValidates: New reports every bad entry of both lists in one error, prefixed once. The
// spellings themselves are ParsePrefixes's, tested in gateway/clientip.
func TestNewValidates(t *testing.T) {
	t.Parallel()
	_, err := New(Config{Allow: []string{"10.0.0.0/8", "10.0.0.0/40", "b"}, Deny: []string{"example.com"}}, Options{})
	if err == nil {
		t.Fatal("New accepted invalid rules")
	}
	want := "creating ip filter: " + `allow[1]: "10.0.0.0/40" is not a CIDR prefix` +
		"\n" + `allow[2]: "b" is neither an IP address nor a CIDR prefix` +
		"\n" + `deny[0]: "example.com" is neither an IP address nor a CIDR prefix`
	if err.Error() != want {
		t.Fatalf("error:\n%s\nwant:\n%s", err, want)
	}
}

// TestRouteRulesSpelledLikeGlobalRules: a rule parsed with ParsePrefixes for a route decides
// like the same rule written in the global Config, for every spelling the global rules accept.
func TestRouteRulesSpelledLikeGlobalRules(t *testing.T) {
	t.Parallel()
	clients := []netip.Addr{
		netip.MustParseAddr("10.1.2.3"), netip.MustParseAddr("10.2.0.1"), netip.MustParseAddr("192.0.2.7"),
		netip.MustParseAddr("2001:db8::1"), netip.MustParseAddr("2001:db9::1"), {},
	}
	for _, rule := range []string{
		"10.0.0.0/8", "10.1.2.3/16", " 10.1.2.3 ", "192.0.2.7", "::ffff:10.0.0.0/104", "::ffff:10.1.2.3",
		"2001:db8::/32", "2001:db8::1", "fe80::1%eth0",
	} {
		t.Run(rule, func(t *testing.T) {
			t.Parallel()
			for _, global := range []Config{{Allow: []string{rule}}, {Deny: []string{rule}}} {
				f, err := New(global, Options{})
				if err != nil {
					t.Fatalf("global rule: %v", err)
				}
				open, err := New(Config{}, Options{})
				if err != nil {
					t.Fatal(err)
				}
				rt := &policy.Route{Policy: policy.Policy{AllowCIDRs: prefixes(t, global.Allow...), DenyCIDRs: prefixes(t, global.Deny...)}}
				for _, c := range clients {
					if g, r := f.Allowed(c, nil), open.Allowed(c, rt); g != r {
						t.Fatalf("%+v: client %v: global rule says %v, route rule says %v", global, c, g, r)
					}
				}
			}
		})
	}
}

func TestReloadReusesMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	first, err := New(Config{Deny: []string{"127.0.0.1"}}, Options{Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	second, err := New(Config{}, Options{Registerer: reg})
	if err != nil {
		t.Fatalf("second New on the same registry: %v", err)
	}
	if first.denied != second.denied {
		t.Fatal("the reloaded stage did not reuse the registered counter")
	}
}

func TestNoGlobalRulesIsFree(t *testing.T) {
	t.Parallel()
	f, err := New(Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	next := &marker{}
	if got, ok := f.Middleware(next).(*marker); !ok || got != next {
		t.Fatal("Middleware without rules should return next itself")
	}
}

type marker struct{}

func (*marker) ServeHTTP(http.ResponseWriter, *http.Request) {}

// Allowed reports whether addr passes the global rules and, when rt is not nil, the route's,
// as the two middleware decide.
func (s *Filter) Allowed(addr netip.Addr, rt *policy.Route) bool {
	if !s.global.admits(addr) {
		return false
	}
	return rt == nil || rules{allow: rt.Policy.AllowCIDRs, deny: rt.Policy.DenyCIDRs}.admits(addr)
}
