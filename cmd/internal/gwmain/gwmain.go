// Package gwmain is the serving loop the gateway binaries share (cmd/gateway, and cmd/shop for
// its in-process gateway): serve, reload on SIGHUP, shut down gracefully when the context ends.
package gwmain

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
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
	// BeforeShutdown runs when ctx ends, before the drain (cmd/shop ends the :watch streams
	// there, or they would hold it). Default: nothing.
	BeforeShutdown func()
}

// Serve serves ln until ctx ends, reloading on each value of hup and, with Watch, when the
// file's content changes (register it with
// signal.Notify before announcing the address, so that no SIGHUP can kill the process), then
// shuts down: in-flight requests finish within ShutdownTimeout. It returns the shutdown's
// error, or the server's if serving failed first.
func (l Loop) Serve(ctx context.Context, ln net.Listener, hup <-chan os.Signal) error {
	serveErr := make(chan error, 1)
	go func() { serveErr <- l.Server.Serve(ln) }()
	changed, stopWatch := l.watch()
	defer stopWatch()
	for {
		select {
		case err := <-serveErr:
			_ = l.Server.Close()
			return fmt.Errorf("serving: %w", err)
		case <-hup:
			l.Reload()
		case <-changed:
			l.Logger.Info("config file changed", slog.String("config", l.Path))
			l.Reload()
		case <-ctx.Done():
			l.Logger.Info("gateway shutting down", slog.Duration("timeout", l.ShutdownTimeout))
			if l.BeforeShutdown != nil {
				l.BeforeShutdown()
			}
			sctx, cancel := context.WithTimeout(context.Background(), l.ShutdownTimeout)
			err := l.Server.Shutdown(sctx)
			cancel()
			if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) {
				err = errors.Join(err, serr)
			}
			l.Logger.Info("gateway stopped")
			return err
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
