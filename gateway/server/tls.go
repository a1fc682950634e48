package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/internal/tlsfiles"
	"google.golang.org/grpc/credentials"
)

// setupTLS loads the TLS files of cfg: the listener's (server.tls) and each upstream's
// (upstreams.<service>.tls, into the upstream dial options). Their material is re-read on each
// new handshake when a file changed (internal/tlsfiles); the names are fixed at start.
func (s *Server) setupTLS(cfg *config.Config) error {
	if cfg.Server.TLS.Enabled() {
		srv, err := tlsfiles.NewServer(cfg.Server.TLS, s.logger)
		if err != nil {
			return fmt.Errorf("server.tls: %w", err)
		}
		s.listenTLS = srv.Config("h2", "http/1.1")
	}
	for _, name := range slices.Sorted(maps.Keys(cfg.Upstreams)) {
		f := cfg.Upstreams[name].TLS
		if !f.Enabled() {
			continue
		}
		c, err := tlsfiles.NewClient(f, s.logger)
		if err != nil {
			return fmt.Errorf("upstreams.%s.tls: %w", name, err)
		}
		if s.dial.Credentials == nil {
			s.dial.Credentials = map[string]credentials.TransportCredentials{}
		}
		s.dial.Credentials[name] = c.Credentials()
	}
	return nil
}

// protocols returns the HTTP server's protocols: nil (net/http's defaults) without TLS. With
// TLS the gateway terminates TLS itself, below its connection wrappers (tlsListener), so that
// those see the plaintext, and net/http serves what comes out of it: HTTP/1.1, or HTTP/2 when
// the client starts with its preface, as one that negotiated "h2" by ALPN does.
func (s *Server) protocols() *http.Protocols {
	if s.listenTLS == nil {
		return nil
	}
	var p http.Protocols
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(true) // decrypted by tlsListener: only TLS connections reach net/http
	return &p
}

// tlsListener returns ln, or with server.tls a listener of TLS server connections over ln's.
// Each connection's handshake runs on its first read, in its own serving goroutine and under
// the server's read-header timeout, never in the accept loop.
func (s *Server) tlsListener(ln net.Listener) net.Listener {
	if s.listenTLS == nil {
		return ln
	}
	return tlsListener{Listener: ln, cfg: s.listenTLS}
}

type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l tlsListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(c, l.cfg), nil
}

// sameTLS refuses a reload that changes the TLS file names (server.tls, upstreams.*.tls): they
// are fixed at start, their files rotate.
func sameTLS(a, b *config.Config) error {
	if a.Server.TLS != b.Server.TLS {
		return errors.New("reloading: server.tls changed: restart the gateway to change it (its files are re-read when they change)")
	}
	for name, u := range a.Upstreams {
		if b.Upstreams[name].TLS != u.TLS {
			return fmt.Errorf("reloading: upstreams.%s.tls changed: restart the gateway to change it (its files are re-read when they change)", name)
		}
	}
	return nil
}
