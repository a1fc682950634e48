package traffic

import (
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"strings"
)

// DefaultPool is the name of an upstream's own addresses (`upstreams.<service>.addresses`): the
// pool of every request that no rule sends elsewhere.
const DefaultPool = "default"

// DNSScheme prefixes an address that is a DNS name to resolve (and re-resolve) rather than a
// fixed host:port: "dns:///inventory.shop.svc:9103". Such an address stands alone in its list.
const DNSScheme = "dns:///"

// Pool is one named backend pool of an upstream.
type Pool struct {
	// Addresses are host:port pairs balanced round robin, or one "dns:///host:port" name
	// re-resolved by grpc-go's DNS resolver. Required.
	Addresses []string `yaml:"addresses" json:"addresses"`
}

// Rule sends the requests it matches to Pool. Exactly one matcher (Weight, Header, Subjects,
// Claim, CIDRs) is set.
type Rule struct {
	// Pool receives the matching requests: DefaultPool or a name of the upstream's pools.
	// Required.
	Pool string `yaml:"pool" json:"pool"`
	// Methods limits the rule to these RPCs of the service (their short names, "GetItem").
	// Default: every RPC of the service.
	Methods []string `yaml:"methods" json:"methods,omitempty"`
	// Weight is the percentage (0 to 100) of callers the rule matches, sticky: a caller's
	// bucket is a hash of its verified subject (its client address when anonymous) salted with
	// the service name, and the rule matches the buckets below Weight, so raising it only adds
	// callers. Weight rules of one service share the bucket: a later weight rule at 50 after
	// one at 10 takes the callers from 10% to 50%.
	Weight *float64 `yaml:"weight" json:"weight,omitempty"`
	// Header matches a request header's exact value.
	Header *HeaderMatch `yaml:"header" json:"header,omitempty"`
	// Subjects matches the verified caller's subject (as the services see it, e.g.
	// "partner|alice" or a plain subject). A route with auth "none" has no verified caller:
	// subject and claim rules need auth "optional" or "required" there.
	Subjects []string `yaml:"subject" json:"subject,omitempty"`
	// Claim matches a top-level claim of the caller's verified token (a string, or a number or
	// boolean as written in the token's JSON).
	Claim *ClaimMatch `yaml:"claim" json:"claim,omitempty"`
	// CIDRs matches the client address (gateway/clientip: behind trusted proxies, the address
	// they name).
	CIDRs []string `yaml:"cidrs" json:"cidrs,omitempty"`
	// Fallback, when set, receives the rule's requests while Pool has no ready instance.
	// Default: none (a pool that is down answers 503 UNAVAILABLE).
	Fallback string `yaml:"fallback" json:"fallback,omitempty"`
}

// HeaderMatch matches a request header's value (the first, exactly).
type HeaderMatch struct {
	Name  string `yaml:"name" json:"name"`
	Value string `yaml:"value" json:"value"`
}

// ClaimMatch matches one claim of the caller's verified token.
type ClaimMatch struct {
	Name  string `yaml:"name" json:"name"`
	Value string `yaml:"value" json:"value"`
}

// Config is what an upstream says about its pools: the named pools beside the default one, and
// the rules that choose among them.
type Config struct {
	// Pools are the upstream's named pools, beside DefaultPool. Default: none.
	Pools map[string]Pool
	// Rules, in order; the first that matches a request chooses its pool. Default: none
	// (every request goes to DefaultPool).
	Rules []Rule
}

// ValidateAddresses checks one pool's address list: host:port pairs, or a single
// "dns:///host:port".
func ValidateAddresses(addrs []string) error {
	if len(addrs) == 0 {
		return errors.New("at least one address is required")
	}
	var errs []error
	for _, a := range addrs {
		if name, ok := strings.CutPrefix(a, DNSScheme); ok {
			if len(addrs) > 1 {
				errs = append(errs, fmt.Errorf("%q: a dns:/// target stands alone in its list", a))
			}
			a = name
		}
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("%q is not host:port nor dns:///host:port", a))
		}
	}
	return errors.Join(errs...)
}

// Validate checks c, and reports every problem at once: each pool's addresses, no pool named
// DefaultPool, and each rule (a pool that exists, exactly one matcher, a weight within 0..100,
// CIDRs that parse, a fallback that exists and is not the rule's pool).
func (c Config) Validate() error {
	var errs []error
	for _, name := range slices.Sorted(maps.Keys(c.Pools)) {
		p := c.Pools[name]
		if name == DefaultPool || name == "" {
			errs = append(errs, fmt.Errorf("pools: %q is reserved for the upstream's own addresses", name))
			continue
		}
		if err := ValidateAddresses(p.Addresses); err != nil {
			errs = append(errs, fmt.Errorf("pools.%s.addresses: %w", name, err))
		}
	}
	exists := func(p string) bool {
		_, ok := c.Pools[p]
		return p == DefaultPool || ok
	}
	for i, r := range c.Rules {
		at := func(err error) error { return fmt.Errorf("rules[%d]: %w", i, err) }
		switch {
		case r.Pool == "":
			errs = append(errs, at(errors.New("pool is required")))
		case !exists(r.Pool):
			errs = append(errs, at(fmt.Errorf("pool %q is not a pool of this upstream", r.Pool)))
		}
		if r.Fallback != "" {
			switch {
			case !exists(r.Fallback):
				errs = append(errs, at(fmt.Errorf("fallback %q is not a pool of this upstream", r.Fallback)))
			case r.Fallback == r.Pool:
				errs = append(errs, at(fmt.Errorf("fallback %q is the rule's own pool", r.Fallback)))
			}
		}
		for _, m := range r.Methods {
			if m == "" || strings.ContainsAny(m, "/. ") {
				errs = append(errs, at(fmt.Errorf("methods: %q is not an RPC's short name (GetItem)", m)))
			}
		}
		n := 0
		if r.Weight != nil {
			n++
			if w := *r.Weight; !(w >= 0 && w <= 100) {
				errs = append(errs, at(fmt.Errorf("weight %v is not within 0..100", w)))
			}
		}
		if r.Header != nil {
			n++
			if r.Header.Name == "" {
				errs = append(errs, at(errors.New("header: name is required")))
			}
		}
		if r.Subjects != nil {
			n++
			if len(r.Subjects) == 0 {
				errs = append(errs, at(errors.New("subject: at least one subject is required")))
			}
		}
		if r.Claim != nil {
			n++
			if r.Claim.Name == "" {
				errs = append(errs, at(errors.New("claim: name is required")))
			}
		}
		if r.CIDRs != nil {
			n++
			if _, err := parseCIDRs(r.CIDRs); err != nil {
				errs = append(errs, at(err))
			}
		}
		if n != 1 {
			errs = append(errs, at(fmt.Errorf("exactly one of weight, header, subject, claim, cidrs is required, got %d", n)))
		}
	}
	return errors.Join(errs...)
}

func parseCIDRs(cidrs []string) ([]netip.Prefix, error) {
	if len(cidrs) == 0 {
		return nil, errors.New("cidrs: at least one prefix is required")
	}
	out := make([]netip.Prefix, 0, len(cidrs))
	var errs []error
	for _, s := range cidrs {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("cidrs: %q is not a prefix (10.0.0.0/8)", s))
			continue
		}
		out = append(out, p.Masked())
	}
	return out, errors.Join(errs...)
}
