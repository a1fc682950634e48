package ipfilter

import (
	"errors"
	"log/slog"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/gateway/clientip"
)

// Config is the `ip_rules` section of the gateway's YAML: the global rules. The zero value
// admits every client. Entries are CIDR prefixes or single addresses, spelled as ParsePrefixes
// accepts.
type Config struct {
	// Allow, when not empty, admits only clients in these CIDR prefixes or single addresses.
	// Default: empty (every address admitted).
	Allow []string `yaml:"allow" json:"allow"`
	// Deny refuses clients in these CIDR prefixes or single addresses; it wins over Allow.
	// Default: empty (no address refused).
	Deny []string `yaml:"deny" json:"deny"`
}

// validate parses cfg and returns every invalid entry of both lists at once.
func (cfg Config) validate() (rules, error) {
	allow, allowErr := ParsePrefixes("allow", cfg.Allow)
	deny, denyErr := ParsePrefixes("deny", cfg.Deny)
	return rules{allow: allow, deny: deny}, errors.Join(allowErr, denyErr)
}

// ParsePrefixes parses a list of IP rules: the global Config.Allow and Config.Deny, and the
// routes' allow_cidrs and deny_cidrs (policy.Policy.AllowCIDRs, DenyCIDRs), so that a rule is
// spelled the same wherever it is written. field names the list in the errors ("allow",
// "routes.X.deny_cidrs").
//
// Accepted: a CIDR prefix ("10.0.0.0/8", masked: "10.1.2.3/8" is 10.0.0.0/8) or a single
// address ("192.0.2.7", "2001:db8::1": a /32 or /128 prefix, any zone dropped), surrounding
// spaces ignored; IPv4-mapped IPv6 entries become IPv4, as client addresses are. An empty list
// gives an empty, non-nil slice. An invalid list gives no prefixes and one error naming every
// bad entry as field[index] (errors.Join).
//
// It is clientip.ParsePrefixes, which also reads client_ip.trusted_proxies; it lives there
// because this package imports clientip, not the other way round.
func ParsePrefixes(field string, cidrs []string) ([]netip.Prefix, error) {
	return clientip.ParsePrefixes(field, cidrs)
}

// Options carries what the process provides. Zero values are replaced by defaults.
type Options struct {
	// Logger is accepted like every stage's; the filter has nothing to log today. Default:
	// slog.Default().
	Logger *slog.Logger
	// Registerer for metrics (gateway_ip_denied_total{scope}). Default: none registered.
	Registerer prometheus.Registerer
	// Resolver finds the client's address. Default: one that trusts no proxy (the peer).
	Resolver *clientip.Resolver
}
