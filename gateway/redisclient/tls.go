package redisclient

import (
	"crypto/tls"
	"log/slog"
	"net"

	"github.com/acme/shopgate/internal/tlsfiles"
)

// tlsConfig returns the TLS configuration of o, nil without TLS. Files that do not load here
// (the gateway's configuration checked them already, so they went away since) make every
// handshake fail with that error, logged once: the backends then treat Redis as down, as
// they do an unreachable one.
func tlsConfig(o Options) *tls.Config {
	if !o.TLS.Enabled() {
		return nil
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		host = o.Addr
	}
	c, err := tlsfiles.NewClient(o.TLS, slog.Default())
	if err != nil {
		slog.Default().Error("redis TLS files do not load: every connection to Redis fails", "addr", o.Addr, "err", err)
		return &tls.Config{MinVersion: tlsfiles.MinVersion, InsecureSkipVerify: true, VerifyConnection: func(tls.ConnectionState) error { return err }}
	}
	return c.ConfigFor(host)
}
