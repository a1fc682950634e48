package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
)

// Client is the rotating material of a TLS client: the CA pool it verifies servers against and,
// optionally, its own certificate.
type Client struct {
	src        *source[clientMaterial]
	serverName string
	hasCA      bool
	hasCert    bool
}

type clientMaterial struct {
	roots *x509.CertPool // nil: the system's
	cert  *tls.Certificate
}

// NewClient loads f's files (an error when they do not load) and returns their material,
// reloaded on each new handshake when a file changed. log receives the failed reloads; nil
// means slog.Default().
func NewClient(f ClientFiles, log *slog.Logger) (*Client, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	var paths []string
	ca := f.CAFile != ""
	if ca {
		paths = append(paths, f.CAFile)
	}
	if f.CertFile != "" {
		paths = append(paths, f.CertFile, f.KeyFile)
	}
	src, err := newSource("client TLS files", paths, log, func(data [][]byte) (*clientMaterial, error) {
		m := &clientMaterial{}
		var err error
		if ca {
			if m.roots, err = parsePool(data[0]); err != nil {
				return nil, err
			}
			data = data[1:]
		}
		if len(data) == 2 {
			cert, err := parsePair(data[0], data[1])
			if err != nil {
				return nil, err
			}
			m.cert = &cert
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return &Client{src: src, serverName: f.ServerName, hasCA: ca, hasCert: f.CertFile != ""}, nil
}

// Config returns ConfigFor(""): for dialers that set the ServerName of the handshake
// themselves (nats.go does, from the URL), the name verified is theirs unless
// ClientFiles.ServerName is set.
func (c *Client) Config() *tls.Config { return c.ConfigFor("") }

// ConfigFor returns a client configuration for a server dialed as host: its chain is verified
// against the current CA pool and must name ClientFiles.ServerName, else host, else the
// ServerName of the handshake; the current client certificate is presented when the server
// asks. crypto/tls's own verification is switched off (InsecureSkipVerify) only because
// VerifyConnection does it instead, against the pool of the moment, on every handshake,
// resumed ones included.
func (c *Client) ConfigFor(host string) *tls.Config {
	name := c.serverName
	if name == "" {
		name = host
	}
	cfg := &tls.Config{
		MinVersion:         MinVersion,
		ServerName:         name,
		InsecureSkipVerify: true, // replaced by VerifyConnection below, never skipped
		VerifyConnection:   func(cs tls.ConnectionState) error { return c.verify(cs, name) },
	}
	if c.hasCert {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return c.src.current().cert, nil
		}
	}
	return cfg
}

// verify checks the server's chain against the current roots, and its name: name, else the
// handshake's ServerName.
func (c *Client) verify(cs tls.ConnectionState, name string) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("tls: the server presented no certificate")
	}
	if name == "" {
		name = cs.ServerName
	}
	if name == "" {
		return errors.New("tls: no server name to verify (set server_name)")
	}
	opts := x509.VerifyOptions{
		Roots:         c.src.current().roots, // nil: the system's roots
		DNSName:       name,
		Intermediates: x509.NewCertPool(),
	}
	for _, ic := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(ic)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return fmt.Errorf("tls: verifying the server's certificate: %w", err)
	}
	return nil
}

// Certificate returns the client's leaf certificate in use, or nil without one.
func (c *Client) Certificate() *x509.Certificate {
	if m := c.src.current(); m.cert != nil {
		return m.cert.Leaf
	}
	return nil
}

// RootCAs returns the current CA pool: nil (the system's roots) without a CA file. For clients
// that verify the server themselves and ask for the pool per connection (nats.go's
// ClientTLSConfig).
func (c *Client) RootCAs() (*x509.CertPool, error) { return c.src.current().roots, nil }

// ClientCertificate returns the current client certificate, an error without one. For clients
// that ask for it per connection (nats.go's ClientTLSConfig).
func (c *Client) ClientCertificate() (tls.Certificate, error) {
	if m := c.src.current(); m.cert != nil {
		return *m.cert, nil
	}
	return tls.Certificate{}, errors.New("tls: no client certificate configured")
}

// HasCA and HasCertificate report whether a CA file and a client certificate are configured.
func (c *Client) HasCA() bool          { return c.hasCA }
func (c *Client) HasCertificate() bool { return c.hasCert }

// ServerName returns ClientFiles.ServerName ("" by default).
func (c *Client) ServerName() string { return c.serverName }
