package svcmain

import (
	"flag"
	"fmt"
	"log/slog"

	"github.com/acme/shopgate/internal/tlsfiles"
	"google.golang.org/grpc"
)

// TLS is the TLS of a service: its gRPC server's certificate (and the CA of the client
// certificates it requires) and its own calls to other services. Every file is re-read when it
// changes, for the next connection (internal/tlsfiles). The zero value: plaintext both ways.
type TLS struct {
	// Server: cert_file and key_file serve gRPC over TLS; client_ca_file requires client
	// certificates of that CA (the gateway's, the other services'). Flags -tls-cert, -tls-key,
	// -tls-client-ca. Default: none (plaintext).
	Server tlsfiles.ServerFiles `yaml:"tls"`
	// Upstream is the TLS of the service's calls to other services (orderd to inventory,
	// storefrontd to the three others): ca_file, cert_file and key_file for mutual TLS,
	// server_name (default: each address's host). Flags -upstream-tls-ca, -upstream-tls-cert,
	// -upstream-tls-key, -upstream-tls-server-name. Default: none (plaintext).
	Upstream tlsfiles.ClientFiles `yaml:"upstream_tls"`
}

// tlsFlags defines the -tls-* and -upstream-tls-* flags on fs, into t.
func (t *TLS) tlsFlags(fs *flag.FlagSet) {
	fs.StringVar(&t.Server.CertFile, "tls-cert", t.Server.CertFile, "PEM certificate chain of the gRPC server (TLS, with -tls-key; re-read when it changes)")
	fs.StringVar(&t.Server.KeyFile, "tls-key", t.Server.KeyFile, "PEM key of -tls-cert")
	fs.StringVar(&t.Server.ClientCAFile, "tls-client-ca", t.Server.ClientCAFile, "PEM CA bundle of the client certificates the server requires (mutual TLS); empty: none asked")
	fs.StringVar(&t.Upstream.CAFile, "upstream-tls-ca", t.Upstream.CAFile, "PEM CA bundle verifying the services this one calls (TLS to them); default: the system's roots when another -upstream-tls-* flag is set")
	fs.StringVar(&t.Upstream.CertFile, "upstream-tls-cert", t.Upstream.CertFile, "PEM client certificate presented to the services this one calls (mutual TLS, with -upstream-tls-key)")
	fs.StringVar(&t.Upstream.KeyFile, "upstream-tls-key", t.Upstream.KeyFile, "PEM key of -upstream-tls-cert")
	fs.StringVar(&t.Upstream.ServerName, "upstream-tls-server-name", t.Upstream.ServerName, "name the called services' certificates must carry; default: each address's host")
}

// UpstreamClient returns the TLS of the service's calls to other services, for
// grpcclient.DialTLS: nil without -upstream-tls-*.
func (t TLS) UpstreamClient(log *slog.Logger) (*tlsfiles.Client, error) {
	if !t.Upstream.Enabled() {
		return nil, nil
	}
	c, err := tlsfiles.NewClient(t.Upstream, log)
	if err != nil {
		return nil, fmt.Errorf("upstream TLS: %w", err)
	}
	return c, nil
}

// serverOptions returns the gRPC server options of t's server side: none without TLS.
func (t TLS) serverOptions(log *slog.Logger) ([]grpc.ServerOption, error) {
	if !t.Server.Enabled() {
		return nil, nil
	}
	s, err := tlsfiles.NewServer(t.Server, log)
	if err != nil {
		return nil, fmt.Errorf("server TLS: %w", err)
	}
	return []grpc.ServerOption{grpc.Creds(s.Credentials())}, nil
}
