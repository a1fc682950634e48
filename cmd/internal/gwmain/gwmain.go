// Package gwmain is the serving loop the gateway binaries share (cmd/gateway, and cmd/shop for
// its in-process gateway): serve, reload on SIGHUP, shut down gracefully when the context ends
// (drain.go: /readyz fails for the drain delay, then the listener closes and in-flight
// requests finish).
package gwmain

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"time"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/server"
)

// Loop is one gateway's serving loop.
type Loop struct {
	// Server is the gateway to serve.
	Server *server.Server
	// Logger receives the reload and shutdown lines.
	Logger *slog.Logger
	// Path is the configuration file reloaded on SIGHUP; "" means there is none to reload.
	Path string
	// Load reads Path again into a configuration for Server.Reload.
	Load func() (*config.Config, error)
	// ShutdownTimeout bounds the graceful shutdown.
	ShutdownTimeout time.Duration
	// Watch reloads Path, as SIGHUP does, when its content changes (server.watch_config; see
	// watch.go). Default: false (cmd sets it from the configuration).
	Watch bool
	// WatchDebounce is how long a burst of changes to the file is let settle before it is
	// read. Default: DefaultWatchDebounce (200ms).
	WatchDebounce time.Duration
	// watchChecked, when set (by tests), is told after each read of the watched file whether
	// its content had changed.
	watchChecked func(changed bool)
	// BeforeShutdown runs when ctx ends, after the drain delay, before the listener closes
	// (cmd/shop ends its services' :watch streams there). Default: nothing.
	BeforeShutdown func()
	// DrainDelay is how long /readyz fails, while everything else is served, between ctx's
	// end and the listener's close (server.drain_delay; see drain.go). Default: 0, none.
	DrainDelay time.Duration
	// Again, when set, receives the signals that come after the first (cmd/gateway: SIGTERM,
	// SIGINT): one during the drain delay ends the delay at once. Default: nil (the delay runs
	// its course).
	Again <-chan os.Signal
	// Admin is server.admin_listen's listener, served beside ln and closed last. Default: nil
	// (no admin listener).
	Admin net.Listener
	// After is the drain delay's clock. Default: time.After (tests pass their own).
	After func(time.Duration) <-chan time.Time
}

// Serve serves ln until ctx ends, reloading on each value of hup and, with Watch, when the
// file's content changes (register it with
// signal.Notify before announcing the address, so that no SIGHUP can kill the process), then
// shuts down: in-flight requests finish within ShutdownTimeout. It returns the shutdown's
// error, or the server's if serving failed first.
func (l Loop) Serve(ctx context.Context, ln net.Listener, hup <-chan os.Signal) error {
	serveErr := make(chan error, 2)
	serving := l.serve(ln, serveErr)
	changed, stopWatch := l.watch()
	defer stopWatch()
	for {
		select {
		case err := <-serveErr:
			_ = l.Server.Close()
			for range serving - 1 { // the other listener's Serve returns once closed
				<-serveErr
			}
			return fmt.Errorf("serving: %w", err)
		case <-hup:
			l.Reload()
		case <-changed:
			l.Logger.Info("config file changed", slog.String("config", l.Path))
			l.Reload()
		case <-ctx.Done():
			return l.shutdown(serveErr, serving)
		}
	}
}

// Reload re-reads the file and swaps the reloadable parts; a bad file leaves the old
// configuration in force, with an error line naming the problem.
func (l Loop) Reload() {
	if l.Path == "" {
		l.Logger.Info("SIGHUP: no configuration file to reload")
		return
	}
	start := time.Now()
	cfg, err := l.Load()
	if err == nil {
		err = l.Server.Reload(cfg)
	}
	if err != nil {
		l.Logger.Error("config reload refused; the previous configuration stays", slog.String("config", l.Path), slog.Any("error", err))
		return
	}
	l.Logger.Info("config reloaded", slog.String("config", l.Path), slog.Duration("took", time.Since(start)))
}
