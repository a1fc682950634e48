// Command inventoryd runs the inventory service (shop.inventory.v1.InventoryService) on its own
// SQLite database.
//
//	inventoryd -listen 127.0.0.1:9103 -data ./data -seed
//	inventoryd -config inventoryd.yaml
//
// Flags override the YAML file. It logs JSON to stderr, prints "listening on <addr>" to stdout
// once serving, and stops gracefully on SIGTERM or SIGINT.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/inventory"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/health"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "inventoryd:", err)
		os.Exit(1)
	}
}

// config is the YAML file's shape; flags of the same name override it.
type config struct {
	Listen          string               `yaml:"listen"`
	Data            string               `yaml:"data"`
	Seed            bool                 `yaml:"seed"`
	MetricsListen   string               `yaml:"metrics_listen"`
	ShutdownTimeout time.Duration        `yaml:"shutdown_timeout"`
	LogLevel        string               `yaml:"log_level"`
	Events          events.RuntimeConfig `yaml:"-"` // flags only: -broker-url, -relay, ... (events.RuntimeConfig.RegisterFlags)
}

func defaults() config {
	return config{Listen: "127.0.0.1:9103", Data: "./data", ShutdownTimeout: 10 * time.Second, LogLevel: "info"}
}

func loadConfig(args []string, stderr io.Writer) (config, error) {
	cfg := defaults()
	fs := flag.NewFlagSet("inventoryd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	path := fs.String("config", "", "YAML configuration file (flags override it)")
	listen := fs.String("listen", cfg.Listen, "gRPC listen address")
	data := fs.String("data", cfg.Data, "data folder; the database is <data>/inventory/inventory.db")
	seed := fs.Bool("seed", cfg.Seed, "add demo items when the catalogue is empty")
	metricsListen := fs.String("metrics-listen", cfg.MetricsListen, "HTTP address serving /metrics; empty: none")
	timeout := fs.Duration("shutdown-timeout", cfg.ShutdownTimeout, "how long in-flight calls may finish at shutdown")
	level := fs.String("log-level", cfg.LogLevel, "debug, info, warn or error")
	cfg.Events.RegisterFlags(fs)
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if *path != "" {
		b, err := os.ReadFile(*path)
		if err != nil {
			return cfg, fmt.Errorf("reading config: %w", err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		dec.KnownFields(true) // a misspelt key is an error, not a silent default
		if err := dec.Decode(&cfg); err != nil && !errors.Is(err, io.EOF) {
			return cfg, fmt.Errorf("parsing config %s: %w", *path, err)
		}
	}
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "listen":
			cfg.Listen = *listen
		case "data":
			cfg.Data = *data
		case "seed":
			cfg.Seed = *seed
		case "metrics-listen":
			cfg.MetricsListen = *metricsListen
		case "shutdown-timeout":
			cfg.ShutdownTimeout = *timeout
		case "log-level":
			cfg.LogLevel = *level
		}
	})
	return cfg, nil
}

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("service", "inventory"), nil
}

// serveMetrics serves reg at /metrics on addr until the returned stop is called.
func serveMetrics(addr string, reg *prometheus.Registry, log *slog.Logger) (stop func(), err error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listening for metrics: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server", "err", err)
		}
	}()
	log.Info("serving metrics", "addr", lis.Addr().String())
	return func() { _ = srv.Close(); <-done }, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := loadConfig(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := newLogger(stderr, cfg.LogLevel)
	if err != nil {
		return err
	}

	store, err := inventory.OpenSQLite(filepath.Join(cfg.Data, "inventory", "inventory.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	if cfg.Seed {
		if err := inventory.SeedDemo(ctx, store); err != nil {
			return err
		}
	}
	svc := inventory.New(store, inventory.Options{Logger: log})

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	grpcMetrics, err := grpcserver.NewMetrics(reg)
	if err != nil {
		return err
	}
	if cfg.MetricsListen != "" {
		stopMetrics, err := serveMetrics(cfg.MetricsListen, reg, log)
		if err != nil {
			return err
		}
		defer stopMetrics()
	}

	// events: broker, relay, consumers (svc.SetNotify(relay.Notify); consumers call svc.Handle*).
	if cfg.Events.Dir == "" {
		cfg.Events.Dir = filepath.Join(cfg.Data, "broker")
	}
	cfg.Events.Broker.Name, cfg.Events.Broker.Logger, cfg.Events.Relay.Logger = "inventoryd", log, log
	cfg.Events.Broker.Registerer, cfg.Events.Relay.Registerer = reg, reg
	ev, err := events.Start(ctx, store.DB(), svc.Subscriptions(), cfg.Events)
	if err != nil {
		return err
	}
	defer ev.Close()
	svc.SetNotify(ev.Notify)

	hs := health.NewServer()
	srv := grpcserver.New(grpcserver.Options{
		Logger:   log,
		Health:   hs,
		Metrics:  grpcMetrics,
		Services: []string{inventoryv1.InventoryService_ServiceDesc.ServiceName},
	})
	svc.Register(srv)
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	log.Info("serving", "addr", lis.Addr().String(), "data", cfg.Data)
	fmt.Fprintf(stdout, "listening on %s\n", lis.Addr())
	err = grpcserver.Serve(ctx, srv, lis, hs, cfg.ShutdownTimeout)
	log.Info("stopped", "err", err)
	return err
}
