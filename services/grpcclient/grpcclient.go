package grpcclient

import (
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/acme/shopgate/internal/tlsfiles"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	_ "google.golang.org/grpc/health" // client-side health checking (healthCheckConfig)
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"
)

// The keepalive of Dial's connections: a ping after KeepaliveTime without activity, and the
// instance is dropped when no answer comes within KeepaliveTimeout.
const (
	KeepaliveTime    = 10 * time.Second
	KeepaliveTimeout = 5 * time.Second
)

// serviceConfig balances over every instance and skips those that report NOT_SERVING.
const serviceConfig = `{"loadBalancingConfig":[{"round_robin":{}}],"healthCheckConfig":{"serviceName":""}}`

// Dial returns a client connection to the service called name (a short name, such as
// "inventory", used in errors and as the scheme of a static address list) at addrs: one
// host:port, a comma-separated list of them, or a gRPC target with a scheme
// (dns:///name:port). The connection is balanced round robin with health checks and
// keepalive (KeepaliveTime, KeepaliveTimeout); it connects lazily. opts are appended to these.
// The connection is plaintext: DialTLS dials over TLS.
func Dial(name, addrs string, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	return DialTLS(name, addrs, nil, opts...)
}

// DialTLS is Dial over TLS with tc (internal/tlsfiles: its CA and client certificate files are
// re-read when they change, for the next connection), each address of a list verified under its
// own host, a dns:/// target under its name. A nil tc dials plaintext, as Dial.
func DialTLS(name, addrs string, tc *tlsfiles.Client, opts ...grpc.DialOption) (*grpc.ClientConn, error) {
	all := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(serviceConfig),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: KeepaliveTime, Timeout: KeepaliveTimeout, PermitWithoutStream: true}),
	}
	target := strings.TrimSpace(addrs)
	if target == "" {
		return nil, fmt.Errorf("%s address: empty", name)
	}
	if !strings.Contains(target, "://") {
		var state resolver.State
		for _, a := range strings.Split(target, ",") {
			if a = strings.TrimSpace(a); a == "" {
				return nil, fmt.Errorf("%s address list %q: an empty entry", name, addrs)
			}
			state.Endpoints = append(state.Endpoints, resolver.Endpoint{Addresses: []resolver.Address{address(a, tc != nil)}})
		}
		r := manual.NewBuilderWithScheme(name)
		r.InitialState(state)
		all = append(all, grpc.WithResolvers(r))
		target = name + ":///" + name
	}
	if tc != nil {
		all = append(all, grpc.WithTransportCredentials(tc.Credentials()))
	}
	cc, err := grpc.NewClient(target, append(all, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("%s client: %w", name, err)
	}
	return cc, nil
}

// address is a static list's entry; over TLS it carries its host as ServerName, the name its
// certificate is verified under (the connection's own authority names the service).
func address(addr string, tls bool) resolver.Address {
	a := resolver.Address{Addr: addr}
	if tls {
		if host, _, err := net.SplitHostPort(addr); err == nil {
			a.ServerName = host
		}
	}
	return a
}
