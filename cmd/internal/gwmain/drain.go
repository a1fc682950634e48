package gwmain

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// serve starts serving ln, and l.Admin when set, each sending Serve's error to errs; it
// returns how many it started.
func (l Loop) serve(ln net.Listener, errs chan<- error) int {
	go func() { errs <- l.Server.Serve(ln) }()
	if l.Admin == nil {
		return 1
	}
	go func() { errs <- l.Server.ServeAdmin(l.Admin) }()
	return 2
}

// shutdown runs the phases of a graceful shutdown, each announced by a log line:
//
//  1. "gateway draining": for DrainDelay /readyz answers 503 {"draining":true} while every
//     request is served, with Connection: close (server.Drain), so that load balancers and
//     keep-alive clients move to other replicas; a signal on Again ends it early.
//  2. "gateway shutting down": BeforeShutdown runs, the listener closes, the open server
//     streams end, and in-flight requests get ShutdownTimeout to finish (server.Shutdown); the
//     admin listener closes after them.
//  3. "gateway stopped", once every listener's Serve returned.
//
// errs receives the serving goroutines' errors; serving is how many there are.
func (l Loop) shutdown(errs <-chan error, serving int) error {
	if l.DrainDelay > 0 {
		l.Server.Drain()
		l.Logger.Info("gateway draining: /readyz answers 503, requests are still served", slog.Duration("drain_delay", l.DrainDelay))
		after := l.After
		if after == nil {
			after = time.After
		}
		select {
		case <-after(l.DrainDelay):
		case sig := <-l.Again:
			l.Logger.Info("gateway drain delay cut short", slog.String("signal", sig.String()))
		}
	}
	l.Logger.Info("gateway shutting down: listener closed, in-flight requests finish", slog.Duration("timeout", l.ShutdownTimeout))
	if l.BeforeShutdown != nil {
		l.BeforeShutdown()
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.ShutdownTimeout)
	err := l.Server.Shutdown(ctx)
	cancel()
	for range serving {
		if serr := <-errs; !errors.Is(serr, http.ErrServerClosed) {
			err = errors.Join(err, serr)
		}
	}
	if err != nil {
		l.Logger.Error("gateway stopped", slog.Any("error", err))
	} else {
		l.Logger.Info("gateway stopped")
	}
	return err
}
