package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"slices"
)

// Server is the rotating material of a TLS server: its certificate and, optionally, the CA
// pool of its clients' certificates.
type Server struct {
	src      *source[serverMaterial]
	clientCA bool
}

type serverMaterial struct {
	cert      tls.Certificate
	clientCAs *x509.CertPool // nil: no client certificate asked
}

// NewServer loads f's files (an error when they do not load) and returns their material,
// reloaded on each new handshake when a file changed. log receives the failed reloads; nil
// means slog.Default().
func NewServer(f ServerFiles, log *slog.Logger) (*Server, error) {
	if err := f.Validate(); err != nil {
		return nil, err
	}
	paths := []string{f.CertFile, f.KeyFile}
	if f.ClientCAFile != "" {
		paths = append(paths, f.ClientCAFile)
	}
	src, err := newSource("server certificate", paths, log, func(data [][]byte) (*serverMaterial, error) {
		cert, err := parsePair(data[0], data[1])
		if err != nil {
			return nil, err
		}
		m := &serverMaterial{cert: cert}
		if len(data) > 2 {
			if m.clientCAs, err = parsePool(data[2]); err != nil {
				return nil, err
			}
		}
		return m, nil
	})
	if err != nil {
		return nil, err
	}
	return &Server{src: src, clientCA: f.ClientCAFile != ""}, nil
}

// Config returns a server configuration offering nextProtos by ALPN ("h2", "http/1.1"; gRPC:
// "h2"). Each handshake gets, through GetConfigForClient, the current certificate and, with a
// client CA file, requires a client certificate verified against the current pool. Session
// tickets are off with client certificates, so that a resumed session never skips the check
// against a rotated client CA.
func (s *Server) Config(nextProtos ...string) *tls.Config {
	protos := slices.Clone(nextProtos)
	base := &tls.Config{MinVersion: MinVersion, NextProtos: protos}
	base.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		m := s.src.current()
		c := &tls.Config{
			MinVersion:   MinVersion,
			NextProtos:   protos,
			Certificates: []tls.Certificate{m.cert},
		}
		if m.clientCAs != nil {
			c.ClientCAs = m.clientCAs
			c.ClientAuth = tls.RequireAndVerifyClientCert
			c.SessionTicketsDisabled = true
		}
		return c, nil
	}
	return base
}

// Certificate returns the leaf certificate in use (what the next handshake presents).
func (s *Server) Certificate() *x509.Certificate { return s.src.current().cert.Leaf }

// MutualTLS reports whether client certificates are required.
func (s *Server) MutualTLS() bool { return s.clientCA }
