package clientip

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func request(remote string, xff ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = remote
	for _, v := range xff {
		r.Header.Add("X-Forwarded-For", v)
	}
	return r
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		trusted []string
		remote  string
		xff     []string
		want    string // "" is the zero Addr
	}{
		{"no proxies trusted ignores xff", nil, "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"untrusted peer ignores xff", []string{"10.0.0.0/8"}, "203.0.113.9:5000", []string{"1.2.3.4"}, "203.0.113.9"},
		{"trusted peer without xff", []string{"10.0.0.0/8"}, "10.1.1.1:5000", nil, "10.1.1.1"},
		{"one trusted hop", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"spoofed left entry is skipped", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"6.6.6.6, 198.51.100.7"}, "198.51.100.7"},
		{"chain of trusted hops", []string{"10.0.0.0/8", "192.168.0.0/16"}, "10.1.1.1:5000", []string{"6.6.6.6, 198.51.100.7, 192.168.3.3, 10.2.2.2"}, "198.51.100.7"},
		{"several header lines", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"6.6.6.6", "198.51.100.7, 10.3.3.3"}, "198.51.100.7"},
		{"every hop trusted gives leftmost", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"10.9.9.9, 10.8.8.8"}, "10.9.9.9"},
		{"single trusted address", []string{"192.0.2.1"}, "192.0.2.1:80", []string{"198.51.100.7"}, "198.51.100.7"},
		{"hop with port", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"198.51.100.7:4711"}, "198.51.100.7"},
		{"ipv6 peer and hop", []string{"2001:db8:1::/48"}, "[2001:db8:1::5]:443", []string{"2001:db8:ffff::9"}, "2001:db8:ffff::9"},
		{"ipv6 hop in brackets with port", []string{"2001:db8:1::/48"}, "[2001:db8:1::5]:443", []string{"[2001:db8:ffff::9]:8443"}, "2001:db8:ffff::9"},
		{"ipv6 untrusted peer", []string{"10.0.0.0/8"}, "[2001:db8::1]:443", []string{"1.2.3.4"}, "2001:db8::1"},
		{"ipv4-mapped hop is unmapped", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"::ffff:198.51.100.7"}, "198.51.100.7"},
		{"ipv4-mapped trusted peer", []string{"10.0.0.0/8"}, "[::ffff:10.1.1.1]:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"malformed hop gives peer", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"not-an-ip"}, "10.1.1.1"},
		{"malformed hop right of client gives peer", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"198.51.100.7, garbage"}, "10.1.1.1"},
		{"malformed hop left of client is never read", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"garbage, 198.51.100.7"}, "198.51.100.7"},
		{"empty hop gives peer", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"198.51.100.7,,"}, "10.1.1.1"},
		{"empty header gives peer", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{""}, "10.1.1.1"},
		{"bad port gives peer", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"198.51.100.7:http"}, "10.1.1.1"},
		{"unclosed bracket gives peer", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"[2001:db8::1"}, "10.1.1.1"},
		{"too many hops gives peer", []string{"10.0.0.0/8"}, "10.1.1.1:5000", []string{"1.2.3.4," + strings.Repeat("10.0.0.1,", MaxHops) + "10.0.0.1"}, "10.1.1.1"},
		{"remote addr not an address", []string{"10.0.0.0/8"}, "pipe", []string{"1.2.3.4"}, ""},
		{"zone dropped from peer", nil, "[fe80::1%eth0]:80", nil, "fe80::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res, err := New(Config{TrustedProxies: tt.trusted})
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			got := res.ClientIP(request(tt.remote, tt.xff...))
			var want netip.Addr
			if tt.want != "" {
				want = netip.MustParseAddr(tt.want)
			}
			if got != want {
				t.Fatalf("ClientIP = %v, want %v", got, want)
			}
		})
	}
}

// TestNewRejectsInvalidProxies pins New's whole error: prefixed once, every bad entry named.
func TestNewRejectsInvalidProxies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		proxies []string
		want    string
	}{
		{"prefix too long", []string{"10.0.0.0/8", "10.0.0.0/33"}, `trusted_proxies[1]: "10.0.0.0/33" is not a CIDR prefix`},
		{"host name", []string{"nope"}, `trusted_proxies[0]: "nope" is neither an IP address nor a CIDR prefix`},
		{"empty bits", []string{"10.0.0.1/"}, `trusted_proxies[0]: "10.0.0.1/" is not a CIDR prefix`},
		{"empty entry", []string{""}, `trusted_proxies[0]: "" is neither an IP address nor a CIDR prefix`},
		{"every bad entry at once", []string{"x", "10.0.0.0/8", "y/1"},
			`trusted_proxies[0]: "x" is neither an IP address nor a CIDR prefix` + "\n" + `trusted_proxies[2]: "y/1" is not a CIDR prefix`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := New(Config{TrustedProxies: tt.proxies})
			if want := "creating client ip resolver: " + tt.want; err == nil || err.Error() != want {
				t.Fatalf("New(%q) error:\n%v\nwant:\n%s", tt.proxies, err, want)
			}
		})
	}
}

func TestParsePrefixes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   []string
		want []string // the prefixes, as netip prints them
	}{
		{"none", nil, []string{}},
		{"masked cidr", []string{"10.0.0.0/8"}, []string{"10.0.0.0/8"}},
		{"host bits are masked", []string{"10.1.2.3/8"}, []string{"10.0.0.0/8"}},
		{"bare ipv4 with spaces", []string{" 192.0.2.1 "}, []string{"192.0.2.1/32"}},
		{"bare ipv6", []string{"2001:db8::1"}, []string{"2001:db8::1/128"}},
		{"ipv6 cidr", []string{"2001:db8::/32"}, []string{"2001:db8::/32"}},
		{"bare ipv6 zone dropped", []string{"fe80::1%eth0"}, []string{"fe80::1/128"}},
		{"ipv4-mapped cidr is ipv4", []string{"::ffff:10.0.0.0/104"}, []string{"10.0.0.0/8"}},
		{"ipv4-mapped address is ipv4", []string{"::ffff:10.0.0.1"}, []string{"10.0.0.1/32"}},
		{"order kept", []string{"192.0.2.7", "10.0.0.0/8"}, []string{"192.0.2.7/32", "10.0.0.0/8"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParsePrefixes("f", tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got == nil {
				t.Fatal("ParsePrefixes returned nil, want a non-nil slice")
			}
			strs := make([]string, len(got))
			for i, p := range got {
				strs[i] = p.String()
			}
			if !slices.Equal(strs, tt.want) {
				t.Fatalf("ParsePrefixes(%q) = %v, want %v", tt.in, strs, tt.want)
			}
		})
	}
}

func TestClientIPDoesNotAllocate(t *testing.T) {
	res, err := New(Config{TrustedProxies: []string{"10.0.0.0/8"}})
	if err != nil {
		t.Fatal(err)
	}
	r := request("10.1.1.1:5000", "6.6.6.6, 198.51.100.7, 10.2.2.2")
	if n := testing.AllocsPerRun(100, func() { _ = res.ClientIP(r) }); n != 0 {
		t.Fatalf("ClientIP allocates %v times per call, want 0", n)
	}
}

// FuzzClientIP checks the invariants of X-Forwarded-For parsing on arbitrary headers: no panic,
// and the result is always either the peer or an address written in the header, never a trusted
// proxy unless every hop is one.
func FuzzClientIP(f *testing.F) {
	seeds := []string{
		"198.51.100.7", "6.6.6.6, 198.51.100.7, 10.2.2.2", "[2001:db8::1]:443, 10.0.0.1",
		"garbage", "", ",,,", "1.2.3.4:99999", "::ffff:1.2.3.4", "fe80::1%eth0", "[::1",
		"10.0.0.1, 10.0.0.2", " 1.2.3.4 ,\t5.6.7.8 ",
	}
	for _, s := range seeds {
		f.Add(s)
	}
	res, err := New(Config{TrustedProxies: []string{"10.0.0.0/8", "2001:db8:1::/48"}})
	if err != nil {
		f.Fatal(err)
	}
	peer := netip.MustParseAddr("10.1.1.1")
	f.Fuzz(func(t *testing.T, xff string) {
		got := res.ClientIP(request("10.1.1.1:5000", xff))
		if !got.IsValid() {
			t.Fatalf("ClientIP(%q) is invalid", xff)
		}
		if got == peer {
			return
		}
		if got.Zone() != "" || got.Is4In6() {
			t.Fatalf("ClientIP(%q) = %v, want unmapped and zone-less", xff, got)
		}
		found, allTrusted := false, true
		for hop := range strings.SplitSeq(xff, ",") {
			a, ok := parseHop(hop)
			if ok && a == got {
				found = true
			}
			if !ok || !res.Trusted(a) {
				allTrusted = false
			}
		}
		if !found {
			t.Fatalf("ClientIP(%q) = %v, which is neither the peer nor a hop", xff, got)
		}
		if res.Trusted(got) && !allTrusted {
			t.Fatalf("ClientIP(%q) = trusted proxy %v although an untrusted hop exists", xff, got)
		}
	})
}
