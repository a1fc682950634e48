package upstream

import (
	"net"

	"google.golang.org/grpc/resolver"
)

// tlsAddress returns the resolver address of a static host:port; over TLS it carries its host
// as ServerName, so that grpc-go hands the handshake that host (the certificate is verified
// against it) rather than the connection's target, which names the service.
func tlsAddress(addr string, tls bool) resolver.Address {
	a := resolver.Address{Addr: addr}
	if tls {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			a.ServerName = host
		}
	}
	return a
}
