package clientip

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// MaxHops is how many X-Forwarded-For hops ClientIP examines at most; a longer chain of trusted
// proxies is treated as malformed and the peer is returned.
const MaxHops = 32

// Config is the `client_ip` section of the gateway's YAML. The zero value trusts no proxy: the
// client is always the TCP peer.
type Config struct {
	// TrustedProxies are the CIDR prefixes ("10.0.0.0/8") or single addresses ("192.0.2.1") of
	// the proxies whose X-Forwarded-For entries are believed. Default: none.
	TrustedProxies []string `yaml:"trusted_proxies" json:"trusted_proxies"`
}

// Resolver finds client IPs. It is safe for concurrent use and immutable once built.
type Resolver struct {
	trusted []netip.Prefix
}

// New validates cfg and builds the resolver.
func New(cfg Config) (*Resolver, error) {
	trusted, err := ParsePrefixes(cfg.TrustedProxies)
	if err != nil {
		return nil, fmt.Errorf("creating client ip resolver: trusted_proxies: %w", err)
	}
	return &Resolver{trusted: trusted}, nil
}

// ParsePrefixes parses CIDR prefixes or single addresses (a /32 or /128 prefix) and returns them
// masked, with IPv4-mapped IPv6 prefixes turned into IPv4. It is shared with the ipfilter stage.
func ParsePrefixes(values []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(values))
	var errs []error
	for _, v := range values {
		p, err := ParsePrefix(v)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// ParsePrefix parses one CIDR prefix or single address.
func ParsePrefix(v string) (netip.Prefix, error) {
	s := strings.TrimSpace(v)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("invalid CIDR %q", v)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid address %q", v)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// Trusted reports whether addr is one of the trusted proxies.
func (r *Resolver) Trusted(addr netip.Addr) bool {
	return Contains(r.trusted, addr)
}

// Contains reports whether addr lies in one of prefixes.
func Contains(prefixes []netip.Prefix, addr netip.Addr) bool {
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Peer returns the TCP peer of req (RemoteAddr), or the zero Addr when RemoteAddr is not an
// address (an in-process request).
func Peer(req *http.Request) netip.Addr {
	a, ok := parseHop(req.RemoteAddr)
	if !ok {
		return netip.Addr{}
	}
	return a
}

// ClientIP returns the client's address following the rules of the package documentation. The
// zero Addr means the peer is unknown (RemoteAddr is not an address).
func (r *Resolver) ClientIP(req *http.Request) netip.Addr {
	peer := Peer(req)
	if len(r.trusted) == 0 || !peer.IsValid() || !r.Trusted(peer) {
		return peer
	}
	lines := req.Header["X-Forwarded-For"]
	client, ok := r.walk(lines)
	if !ok {
		return peer
	}
	return client
}

// walk scans the X-Forwarded-For lines right to left; ok is false for a missing, malformed or
// over-long header.
func (r *Resolver) walk(lines []string) (netip.Addr, bool) {
	var last netip.Addr
	hops := 0
	for i := len(lines) - 1; i >= 0; i-- {
		line := lines[i]
		for {
			var hop string
			j := strings.LastIndexByte(line, ',')
			if j < 0 {
				hop = line
			} else {
				hop = line[j+1:]
			}
			hops++
			if hops > MaxHops {
				return netip.Addr{}, false
			}
			a, ok := parseHop(hop)
			if !ok {
				return netip.Addr{}, false
			}
			if !r.Trusted(a) {
				return a, true
			}
			last = a
			if j < 0 {
				break
			}
			line = line[:j]
		}
	}
	return last, last.IsValid()
}

// parseHop parses one hop: an address, optionally with a port, IPv6 optionally in brackets,
// surrounded by optional spaces or tabs. The result is unmapped, its zone dropped.
func parseHop(s string) (netip.Addr, bool) {
	s = strings.Trim(s, " \t")
	if s == "" {
		return netip.Addr{}, false
	}
	if s[0] == '[' { // "[v6]" or "[v6]:port"
		end := strings.IndexByte(s, ']')
		if end < 0 {
			return netip.Addr{}, false
		}
		rest := s[end+1:]
		if rest != "" && !validPort(rest) {
			return netip.Addr{}, false
		}
		s = s[1:end]
	} else if i := strings.IndexByte(s, ':'); i >= 0 && strings.LastIndexByte(s, ':') == i { // "v4:port"
		if !validPort(s[i:]) {
			return netip.Addr{}, false
		}
		s = s[:i]
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, false
	}
	return a.Unmap().WithZone(""), true
}

// validPort reports whether s is ":" followed by 1 to 5 digits.
func validPort(s string) bool {
	if len(s) < 2 || len(s) > 6 || s[0] != ':' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}
