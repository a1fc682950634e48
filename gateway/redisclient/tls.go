package redisclient

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/acme/shopgate/internal/tlsfiles"
)

// keepAlive is the TCP keep-alive of every connection, go-redis's own default: probing after
// 30s idle, the peer dead after 3 unanswered probes 5s apart.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 30 * time.Second, Interval: 5 * time.Second, Count: 3}

// dialer returns the dial function of c: TCP bounded by Timeout, then, with TLS, a handshake
// bounded by the same context, verifying the name of the host dialed (each node of a cluster,
// each sentinel, the primary of the moment) unless tls.server_name says another. Files that do
// not load here (the gateway's configuration checked them already, so they went away since)
// make every dial fail with that error, logged once: the backends then treat Redis as down, as
// they do an unreachable one.
func dialer(c Config) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: c.Timeout, KeepAliveConfig: keepAlive}
	if !c.TLS.Enabled() {
		return d.DialContext
	}
	files, err := tlsfiles.NewClient(c.TLS, slog.Default())
	if err != nil {
		slog.Default().Error("redis TLS files do not load: every connection to Redis fails", "redis", c.Where(), "err", err)
		err = fmt.Errorf("redis TLS files: %w", err)
		return func(context.Context, string, string) (net.Conn, error) { return nil, err }
	}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err != nil {
			host = addr
		}
		raw, err := d.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		conn := tls.Client(raw, files.ConfigFor(host))
		hctx := ctx
		if c.Timeout > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(ctx, c.Timeout)
			defer cancel()
		}
		if err := conn.HandshakeContext(hctx); err != nil {
			_ = raw.Close()
			return nil, err
		}
		return conn, nil
	}
}
