package events

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/acme/shopgate/internal/tlsfiles"
)

// tlsOptions returns the nats.go options of c: none without TLS. nats.go asks for the CA pool
// and the client certificate on every connection it makes (reconnections included) and
// verifies the server itself, against that pool and the URL's host (or c's ServerName).
func tlsOptions(c *tlsfiles.Client) []nats.Option {
	if c == nil {
		return nil
	}
	opts := []nats.Option{nats.Secure(&tls.Config{MinVersion: tlsfiles.MinVersion, ServerName: c.ServerName()})}
	var certCB nats.TLSCertHandler
	var rootsCB nats.RootCAsHandler
	if c.HasCertificate() {
		certCB = c.ClientCertificate
	}
	if c.HasCA() {
		rootsCB = func() (*x509.CertPool, error) { return c.RootCAs() }
	}
	if certCB != nil || rootsCB != nil {
		opts = append(opts, nats.ClientTLSConfig(certCB, rootsCB))
	}
	return opts
}

// registerTLSFlags defines -broker-tls-ca, -broker-tls-cert, -broker-tls-key and
// -broker-tls-server-name on fs, into f.
func registerTLSFlags(fs *flag.FlagSet, f *tlsfiles.ClientFiles) {
	fs.StringVar(&f.CAFile, "broker-tls-ca", f.CAFile, "PEM CA bundle verifying the broker's certificate (TLS to -broker-url; re-read when it changes); default: the system's roots when another -broker-tls-* flag is set")
	fs.StringVar(&f.CertFile, "broker-tls-cert", f.CertFile, "PEM client certificate for the broker (mutual TLS, with -broker-tls-key; re-read when it changes)")
	fs.StringVar(&f.KeyFile, "broker-tls-key", f.KeyFile, "PEM key of -broker-tls-cert")
	fs.StringVar(&f.ServerName, "broker-tls-server-name", f.ServerName, "name the broker's certificate must carry; default: the URL's host")
}

// brokerTLS loads f's files for a connection to an external broker: nil without TLS.
func brokerTLS(f tlsfiles.ClientFiles, cfg Config) (*tlsfiles.Client, error) {
	if !f.Enabled() {
		return nil, nil
	}
	c, err := tlsfiles.NewClient(f, cfg.Logger)
	if err != nil {
		return nil, fmt.Errorf("broker TLS: %w", err)
	}
	return c, nil
}
