package clientip

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

// Config is the `client_ip` section of the gateway's YAML. The zero value trusts no proxy: the
// client is always the TCP peer.
type Config struct {
	// TrustedProxies are the CIDR prefixes ("10.0.0.0/8") or single addresses ("192.0.2.1") of
	// the proxies whose X-Forwarded-For entries are believed, in any spelling ParsePrefixes
	// accepts. Default: none (X-Forwarded-For is never believed).
	TrustedProxies []string `yaml:"trusted_proxies" json:"trusted_proxies"`
}

// validate parses cfg and returns every invalid entry at once.
func (cfg Config) validate() (trusted []netip.Prefix, err error) {
	return ParsePrefixes("trusted_proxies", cfg.TrustedProxies)
}

// ParsePrefixes parses a list of IP rules, the list field of a configuration: each entry is a
// CIDR prefix ("10.0.0.0/8"; host bits are masked, "10.1.2.3/8" is 10.0.0.0/8) or a single
// address ("192.0.2.7", "2001:db8::1"; a /32 or /128 prefix, any zone dropped), with surrounding
// spaces ignored. IPv4-mapped IPv6 entries ("::ffff:10.0.0.0/104", "::ffff:10.0.0.1") become
// IPv4, since ClientIP returns IPv4 clients unmapped. An empty list gives an empty, non-nil
// slice. An invalid list gives no prefixes and an error naming every bad entry as
// field[index], joined with errors.Join.
//
// The gateway has one spelling of IP rules: client_ip.trusted_proxies, the global ip_rules and
// the routes' allow_cidrs/deny_cidrs all go through this function (ipfilter.ParsePrefixes is
// this same parser, exported where the rules are enforced).
func ParsePrefixes(field string, values []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(values))
	var errs []error
	for i, v := range values {
		p, err := parsePrefix(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s[%d]: %w", field, i, err))
			continue
		}
		out = append(out, p)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

// parsePrefix parses one CIDR prefix or single address, as ParsePrefixes describes.
func parsePrefix(v string) (netip.Prefix, error) {
	s := strings.TrimSpace(v)
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%q is not a CIDR prefix", v)
		}
		if p.Addr().Is4In6() && p.Bits() >= 96 {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an IP address nor a CIDR prefix", v)
	}
	a = a.Unmap().WithZone("")
	return netip.PrefixFrom(a, a.BitLen()), nil
}
