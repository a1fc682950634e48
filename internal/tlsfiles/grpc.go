package tlsfiles

import (
	"context"
	"net"

	"google.golang.org/grpc/credentials"
)

// Credentials returns gRPC transport credentials of c: each connection handshakes with
// ConfigFor the host of the authority grpc-go dials (the address's ServerName when the
// resolver sets one, else the target's authority), so a rotated CA or client certificate is
// used by the next connection.
func (c *Client) Credentials() credentials.TransportCredentials { return grpcCreds{c: c} }

type grpcCreds struct{ c *Client }

func (g grpcCreds) ClientHandshake(ctx context.Context, authority string, raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	host := authority
	if h, _, err := net.SplitHostPort(authority); err == nil {
		host = h
	}
	return credentials.NewTLS(g.c.ConfigFor(host)).ClientHandshake(ctx, authority, raw)
}

func (g grpcCreds) ServerHandshake(raw net.Conn) (net.Conn, credentials.AuthInfo, error) {
	return credentials.NewTLS(g.c.Config()).ServerHandshake(raw)
}

func (g grpcCreds) Info() credentials.ProtocolInfo { return credentials.NewTLS(g.c.Config()).Info() }

func (g grpcCreds) Clone() credentials.TransportCredentials { return g }

//nolint:staticcheck // part of the interface
func (g grpcCreds) OverrideServerName(string) error { return nil }

// Credentials returns gRPC server transport credentials of s (ALPN "h2").
func (s *Server) Credentials() credentials.TransportCredentials {
	return credentials.NewTLS(s.Config("h2"))
}
