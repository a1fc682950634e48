package upstream

import (
	"fmt"
	"net/url"
	"strings"

	"google.golang.org/grpc/resolver"
	_ "google.golang.org/grpc/resolver/dns" // the "dns" resolver builder dnsBuilder wraps
)

// dnsScheme prefixes an address that is a name to resolve: "dns:///inventory.shop.svc:9103".
const dnsScheme = "dns:///"

// dnsTarget returns the name of a "dns:///host:port" list (one address), or false for a
// static list.
func dnsTarget(addrs []string) (string, bool) {
	if len(addrs) != 1 {
		return "", false
	}
	return strings.CutPrefix(addrs[0], dnsScheme)
}

// dnsBuilder resolves a dns:/// target with grpc-go's own DNS resolver (re-resolved when a
// connection fails, at most every 30s, and on grpc-go's schedule), under the connection's
// "upstream" scheme, adding the connection's ejection pool to every state the resolver sends
// (withPool), as the static list's manual resolver does once: the balancer finds its pool in
// each update. The resolver's service config (TXT records) is never read: the gateway's is the
// default and only one.
type dnsBuilder struct {
	name string // host:port
	pool *pool
}

func (b *dnsBuilder) Scheme() string { return "upstream" }

func (b *dnsBuilder) Build(_ resolver.Target, cc resolver.ClientConn, opts resolver.BuildOptions) (resolver.Resolver, error) {
	inner := resolver.Get("dns")
	if inner == nil {
		return nil, fmt.Errorf("no dns resolver registered")
	}
	u, err := url.Parse(dnsScheme + b.name)
	if err != nil {
		return nil, fmt.Errorf("dns target %q: %w", b.name, err)
	}
	opts.DisableServiceConfig = true
	return inner.Build(resolver.Target{URL: *u}, &poolCC{ClientConn: cc, pool: b.pool}, opts)
}

// poolCC passes a resolver's states on with the pool attached.
type poolCC struct {
	resolver.ClientConn
	pool *pool
}

func (c *poolCC) UpdateState(s resolver.State) error {
	if len(s.Endpoints) == 0 { // the balancer and the pool read endpoints
		for _, a := range s.Addresses {
			s.Endpoints = append(s.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{a}})
		}
	}
	return c.ClientConn.UpdateState(withPool(s, c.pool))
}
