package traffic

import (
	"fmt"
	"net/http"
	"net/netip"
	"slices"

	"github.com/acme/shopgate/gateway/identity"
)

// buckets is how finely Rule.Weight divides callers: 1/100 of a percent.
const buckets = 10000

// Choice is the pool chosen for a request, and where its calls go while that pool has no ready
// instance ("": nowhere, they fail like any unavailable upstream).
type Choice struct {
	Pool     string
	Fallback string
}

// Selector chooses the pool of a service's requests by its rules. It is immutable and safe for
// concurrent use; a reload builds a new one.
type Selector struct {
	service string
	rules   []rule
	needsIP bool // a rule reads the client address (cidrs, or weight for anonymous callers)
}

type rule struct {
	choice   Choice
	methods  []string
	weight   uint64 // buckets below it match; with isWeight
	isWeight bool
	header   *HeaderMatch
	subjects []string
	claim    *ClaimMatch
	cidrs    []netip.Prefix
}

// New compiles the rules of service's Config, which must have passed Validate. It returns nil
// when there are no rules: every request goes to DefaultPool.
func New(service string, c Config) (*Selector, error) {
	if err := c.Validate(); err != nil {
		return nil, fmt.Errorf("traffic rules of %s: %w", service, err)
	}
	if len(c.Rules) == 0 {
		return nil, nil
	}
	s := &Selector{service: service}
	for _, r := range c.Rules {
		cr := rule{choice: Choice{Pool: r.Pool, Fallback: r.Fallback}, methods: r.Methods,
			header: r.Header, subjects: r.Subjects, claim: r.Claim}
		if r.Header != nil {
			cr.header = &HeaderMatch{Name: http.CanonicalHeaderKey(r.Header.Name), Value: r.Header.Value}
		}
		if r.Weight != nil {
			cr.isWeight = true
			cr.weight = uint64(*r.Weight*buckets/100 + 0.5)
			s.needsIP = true
		}
		if r.CIDRs != nil {
			cr.cidrs, _ = parseCIDRs(r.CIDRs) // validated
			s.needsIP = true
		}
		s.rules = append(s.rules, cr)
	}
	return s, nil
}

// Request is what the rules may read of a request. ClientIP is called at most once, and only
// when a rule needs the client address.
type Request struct {
	// Method is the RPC's short name ("GetItem").
	Method string
	// Header is the HTTP request's header.
	Header http.Header
	// Identity is the verified caller; nil or anonymous when there is none.
	Identity *identity.Identity
	// ClientIP returns the client address (behind trusted proxies).
	ClientIP func() netip.Addr
}

// Choose returns the pool of req: the choice of the first rule that matches, else DefaultPool
// with no fallback. A nil Selector chooses DefaultPool.
func (s *Selector) Choose(req Request) Choice {
	if s == nil {
		return Choice{Pool: DefaultPool}
	}
	var ip netip.Addr
	ipDone := false
	clientIP := func() netip.Addr {
		if !ipDone && req.ClientIP != nil {
			ip, ipDone = req.ClientIP(), true
		}
		return ip
	}
	anon := req.Identity == nil || req.Identity.Anonymous()
	for i := range s.rules {
		r := &s.rules[i]
		if len(r.methods) > 0 && !slices.Contains(r.methods, req.Method) {
			continue
		}
		var ok bool
		switch {
		case r.isWeight:
			var b uint64
			if anon {
				b = s.bucketIP(clientIP())
			} else {
				b = s.bucket(req.Identity.Subject)
			}
			ok = b < r.weight
		case r.header != nil:
			v := req.Header[r.header.Name]
			ok = len(v) > 0 && v[0] == r.header.Value
		case r.subjects != nil:
			ok = !anon && slices.Contains(r.subjects, req.Identity.Subject)
		case r.claim != nil:
			if !anon {
				v, has := req.Identity.Claims[r.claim.Name]
				ok = has && v == r.claim.Value
			}
		case r.cidrs != nil:
			a := clientIP().Unmap()
			for _, p := range r.cidrs {
				if p.Contains(a) {
					ok = true
					break
				}
			}
		}
		if ok {
			return r.choice
		}
	}
	return Choice{Pool: DefaultPool}
}

// FNV-1a, 64 bits: the bucket hash (stable across processes and versions, unlike maphash).
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

func (s *Selector) salted() uint64 {
	h := uint64(fnvOffset)
	for i := 0; i < len(s.service); i++ {
		h = (h ^ uint64(s.service[i])) * fnvPrime
	}
	return (h ^ 0) * fnvPrime // a separator: "a.B"+"c" and "a.Bc"+"" differ
}

// bucket is the caller's bucket (0..buckets-1) by its subject.
func (s *Selector) bucket(key string) uint64 {
	h := s.salted()
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * fnvPrime
	}
	return mix(h) % buckets
}

// bucketIP is an anonymous caller's bucket by its client address.
func (s *Selector) bucketIP(a netip.Addr) uint64 {
	h := s.salted()
	b := a.Unmap().As16()
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return mix(h) % buckets
}

// mix spreads FNV's low bits (murmur3's finalizer), so that subjects that differ in their last
// character only do not land in neighbouring buckets.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// Bucket returns the weight bucket of a verified subject for service, as a percentage
// (0 <= p < 100): a weight rule of the service matches the subject when p < Weight. For tests
// and operators ("which callers are in the canary").
func Bucket(service, subject string) float64 {
	s := Selector{service: service}
	return float64(s.bucket(subject)) * 100 / buckets
}

// PoolNames returns DefaultPool, then the names of c.Pools, sorted.
func (c Config) PoolNames() []string {
	names := []string{DefaultPool}
	for name := range c.Pools {
		names = append(names, name)
	}
	slices.Sort(names[1:])
	return names
}
