package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/acme/shopgate/cmd/internal/svcmain"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/passport"
	"github.com/prometheus/client_golang/prometheus"
)

// deps is what every service of the stack shares.
type deps struct {
	ctx      context.Context
	logger   *slog.Logger
	reg      *prometheus.Registry
	broker   *events.Embedded
	passport *passport.Verifier // the gateway's passport keys, shared by the services
}

func (d deps) log(service string) *slog.Logger { return d.logger.With("service", service) }

// start serves one service of the stack on a free loopback port, its events on the shared
// broker. Stop it (svcmain.Running.Stop) before the broker closes.
func (d deps) start(svc svcmain.Service) (*svcmain.Running, error) {
	svc.Passport = d.passport
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("%s: listening: %w", svc.Name, err)
	}
	r, err := svcmain.Start(d.ctx, svc, lis, events.RuntimeConfig{Embedded: d.broker}, d.reg, d.log(svc.Name), svcmain.DefaultShutdownTimeout)
	if err != nil {
		_ = lis.Close()
		return nil, fmt.Errorf("%s: %w", svc.Name, err)
	}
	return r, nil
}
