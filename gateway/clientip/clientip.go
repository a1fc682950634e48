package clientip

import (
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// MaxHops is how many X-Forwarded-For hops ClientIP examines at most; a longer chain of trusted
// proxies is treated as malformed and the peer is returned.
const MaxHops = 32

// Resolver finds client IPs. It is safe for concurrent use and immutable once built; it owns
// nothing, so it has no Close.
type Resolver struct {
	trusted []netip.Prefix
}

// New validates cfg (every invalid entry is reported at once) and builds the resolver. Its
// errors start with "creating client ip resolver: ", once; callers need not wrap them again.
func New(cfg Config) (*Resolver, error) {
	trusted, err := cfg.validate()
	if err != nil {
		return nil, fmt.Errorf("creating client ip resolver: %w", err)
	}
	return &Resolver{trusted: trusted}, nil
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
