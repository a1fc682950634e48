package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"net"

	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
)

// deps is what every service of the stack shares.
type deps struct {
	ctx    context.Context
	logger *slog.Logger
	reg    *prometheus.Registry
	broker *events.Embedded
}

func (d deps) log(service string) *slog.Logger { return d.logger.With("service", service) }

// backend is one running gRPC service of the stack: its server on a loopback port of its own
// and its events runtime (relay and consumer) on the shared broker.
type backend struct {
	lis    net.Listener
	srv    *grpc.Server
	health *health.Server
	ev     *events.Runtime
	done   chan error
}

// start serves one service: events first (so that its first commit already wakes the relay),
// then the gRPC server with health and reflection on 127.0.0.1 at a free port.
func (d deps) start(name, serviceName string, db *sql.DB, consumer events.Consumer, register func(grpc.ServiceRegistrar), setNotify func(func())) (*backend, error) {
	log := d.log(name)
	ev, err := events.Start(d.ctx, db, consumer, events.RuntimeConfig{
		Embedded: d.broker,
		Broker:   events.Config{Name: name, Logger: log, Registerer: d.reg},
		Relay:    events.RelayConfig{Logger: log, Registerer: d.reg},
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	setNotify(ev.Notify)
	metrics, err := grpcserver.NewMetrics(d.reg)
	if err != nil {
		ev.Close()
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	b := &backend{health: health.NewServer(), ev: ev, done: make(chan error, 1)}
	b.srv = grpcserver.New(grpcserver.Options{Logger: log, Health: b.health, Metrics: metrics, Services: []string{serviceName}})
	register(b.srv)
	if b.lis, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		ev.Close()
		return nil, fmt.Errorf("%s: listening: %w", name, err)
	}
	go func() { b.done <- b.srv.Serve(b.lis) }()
	log.Info("serving", "addr", b.addr())
	return b, nil
}

func (b *backend) addr() string { return b.lis.Addr().String() }

// stop reports NOT_SERVING, drains the server (grpcserver.DefaultStopTimeout at most), then
// stops the consumer and the relay.
func (b *backend) stop() {
	grpcserver.Stop(b.srv, b.health, grpcserver.DefaultStopTimeout)
	<-b.done
	b.ev.Close()
}
