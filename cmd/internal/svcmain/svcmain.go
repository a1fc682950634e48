// Package svcmain is the wiring the service binaries share (cmd/orderd, cmd/paymentd,
// cmd/inventoryd, cmd/storefrontd, and cmd/shop for its in-process services): the command
// line and YAML file, the logger, the metrics endpoint, the events runtime (for a service with
// a database) and the gRPC server with health, reflection and a graceful stop. It is wiring only: the services themselves are in services/.
package svcmain

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/acme/shopgate/internal/buildinfo"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
)

// Defaults of Config.
const (
	DefaultData            = "./data"
	DefaultShutdownTimeout = 10 * time.Second
	DefaultLogLevel        = "info"
)

// Config is what every service's YAML file and command line have; a service embeds it inline
// (`yaml:",inline"`) beside its own fields.
type Config struct {
	// Listen is the gRPC listen address. Default: the service's own port on 127.0.0.1.
	Listen string `yaml:"listen"`
	// Data is the data folder; the database is <data>/<service>/<service>.db (unless
	// DatabaseURL is set) and an embedded broker keeps its files under <data>/broker. Default:
	// DefaultData.
	Data string `yaml:"data"`
	// DatabaseURL is the PostgreSQL database of the service (flag -database-url), e.g.
	// "postgres://shop@db:5432/shop": the service keeps its tables in the first schema of the
	// URL's search_path, created when missing; without one, in the schema shop_<service>
	// (shop_order), so that the services may share one URL. The replicas of a service share its
	// URL. The password is better given by PGPASSWORD or ~/.pgpass than in the URL. Default "":
	// the SQLite file under Data.
	DatabaseURL string `yaml:"database_url"`
	// MetricsListen is the HTTP address serving /metrics. Default "": none.
	MetricsListen string `yaml:"metrics_listen"`
	// ShutdownTimeout is how long in-flight calls may finish at shutdown. Default:
	// DefaultShutdownTimeout.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// LogLevel is debug, info, warn or error. Default: DefaultLogLevel.
	LogLevel string `yaml:"log_level"`
	// PassportJWKS is the JWK Set file of the keys the gateway signs passports with (`gateway
	// passport-keys jwks`). It is read again every 5s, so a rotated key needs no restart.
	// Required: without it no caller could be verified.
	PassportJWKS string `yaml:"passport_jwks"`
	// Events configures the broker connection; flags only (-broker-url, -relay, ...: see
	// events.RuntimeConfig.RegisterFlags).
	Events events.RuntimeConfig `yaml:"-"`
	// TLS is the gRPC server's TLS (tls:) and that of the calls to other services
	// (upstream_tls:); see TLS. Default: plaintext.
	TLS `yaml:",inline"`
}

// Defaults returns the Config of a service listening on listen.
func Defaults(listen string) Config {
	return Config{Listen: listen, Data: DefaultData, ShutdownTimeout: DefaultShutdownTimeout, LogLevel: DefaultLogLevel}
}

// Flags defines c's flags on fs, each bound to its field with the field's value as default.
// database is the SQLite file's path under the data folder ("order/order.db").
func (c *Config) Flags(fs *flag.FlagSet, database string) {
	c.ServerFlags(fs)
	fs.StringVar(&c.Data, "data", c.Data, "data folder; the database is <data>/"+database+" unless -database-url is set")
	fs.StringVar(&c.DatabaseURL, "database-url", c.DatabaseURL,
		"PostgreSQL URL of the database, e.g. postgres://user@host:5432/shop; the tables go in the schema of its search_path, default "+
			schemaOf(database)+" (created if missing); password best in PGPASSWORD; empty: the SQLite file <data>/"+database)
	c.Events.RegisterFlags(fs)
}

// Source is where the service's database is: DatabaseURL when set (with search_path set to
// shop_<service> when the URL has none: "order/order.db" gives shop_order), else the SQLite
// file <Data>/<database> ("order/order.db").
func (c Config) Source(database string) storage.Source {
	src := storage.Source{URL: c.DatabaseURL, Path: filepath.Join(c.Data, database)}
	if !storage.IsPostgres(src.URL) {
		return src // SQLite, or a bad URL that opening refuses
	}
	u, err := url.Parse(src.URL)
	if err != nil {
		return src // opening reports it
	}
	q := u.Query()
	if q.Get("search_path") == "" && q.Get("options") == "" {
		q.Set("search_path", schemaOf(database))
		u.RawQuery = q.Encode()
		src.URL = u.String()
	}
	return src
}

// schemaOf is the default PostgreSQL schema of the service whose SQLite file is database:
// "order/order.db" gives "shop_order".
func schemaOf(database string) string {
	return "shop_" + strings.TrimSuffix(filepath.Base(database), ".db")
}

// ServerFlags defines the flags of a service without data or events (a front server such as
// storefrontd): -listen, -metrics-listen, -shutdown-timeout, -log-level, -passport-jwks, and
// the TLS flags (-tls-cert, -tls-key, -tls-client-ca, -upstream-tls-*: see TLS).
// Flags defines them too.
func (c *Config) ServerFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.Listen, "listen", c.Listen, "gRPC listen address")
	fs.StringVar(&c.MetricsListen, "metrics-listen", c.MetricsListen, "HTTP address serving /metrics; empty: none")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", c.ShutdownTimeout, "how long in-flight calls may finish at shutdown")
	fs.StringVar(&c.LogLevel, "log-level", c.LogLevel, "debug, info, warn or error")
	fs.StringVar(&c.PassportJWKS, "passport-jwks", c.PassportJWKS, "JWKS file of the gateway's passport keys (required; re-read every 5s)")
	c.tlsFlags(fs)
}

// Load fills cfg (a pointer to the service's config struct, holding its defaults) from args
// and the YAML file named by -config: the file over the defaults, then the flags over the file.
// define binds every flag of the service to its field of cfg with the field's current value as
// default (it is called twice: before and after the file is read). The file is decoded
// strictly: a misspelt key is an error naming it. Environment variables EnvPrefix(name)+"KEY"
// override the file's settings (or the defaults without a file), and the flags override them.
func Load(name string, args []string, stderr io.Writer, cfg any, define func(*flag.FlagSet)) error {
	var path string
	parse := func(out io.Writer) error {
		fs := flag.NewFlagSet(name, flag.ContinueOnError)
		fs.SetOutput(out)
		fs.StringVar(&path, "config", path, "YAML configuration file (flags override it)")
		buildinfo.Flag(fs) // answered by the binary before Load (buildinfo.PrintIfRequested)
		define(fs)
		if err := fs.Parse(args); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments %q", fs.Args())
		}
		return nil
	}
	if err := parse(stderr); err != nil {
		return err
	}
	var b []byte
	if path != "" {
		var err error
		if b, err = os.ReadFile(path); err != nil {
			return fmt.Errorf("reading config: %w", err)
		}
	}
	if err := decode(b, cfg, EnvPrefix(name), os.Environ()); err != nil { // env.go
		if path == "" {
			return fmt.Errorf("parsing config: %w", err)
		}
		return fmt.Errorf("parsing config %s: %w", path, err)
	}
	return parse(io.Discard) // the flags again, over the file and the environment
}

// NewLogger returns a JSON logger on w at level, tagged with the service's name.
func NewLogger(w io.Writer, level, service string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l})).With("service", service), nil
}

// Service is one gRPC service to serve: what Start needs of it.
type Service struct {
	// Name is the short name ("order"): the broker connection is named Name+"d".
	Name string
	// ServiceName is the full gRPC service name reported SERVING by the health service.
	ServiceName string
	// DB holds the service's outbox and inbox. nil for a service without events (a front
	// server): no events runtime is started, and Consumer and SetNotify are not used.
	DB *sql.DB
	// Dialect is DB's SQL dialect, for the outbox relay (on PostgreSQL its rounds are
	// exclusive among the service's replicas). Default storage.SQLite.
	Dialect storage.Dialect
	// Consumer is the service's event consumer (its Subscriptions()).
	Consumer events.Consumer
	// Register registers the service on the gRPC server.
	Register func(grpc.ServiceRegistrar)
	// SetNotify receives the relay's wake-up, called after each commit. Default: nothing.
	SetNotify func(func())
	// BeforeStop runs when the stop begins, before the drain (the order service ends its watch
	// streams there). Default: nothing.
	BeforeStop func()
	// Passport verifies the gateway's passports. Required by Start; Run makes it from
	// Config.PassportJWKS when nil.
	Passport *passport.Verifier
	// TracerProvider traces the service's calls and events (internal/telemetry's Setup).
	// Default nil: tracing off.
	TracerProvider trace.TracerProvider
	// ServerOptions are added to the gRPC server's (Run puts the TLS credentials of
	// Config.TLS here). Default: none.
	ServerOptions []grpc.ServerOption
	// Registry holds the service's own metrics, for Run to serve beside the gRPC server's and
	// the Go runtime's (which Run registers on it). Default: a new registry.
	Registry *prometheus.Registry
}

// Running is a started Service. Stop it.
type Running struct {
	lis        net.Listener
	srv        *grpc.Server
	health     *health.Server
	ev         *events.Runtime // nil without events
	done       chan error
	beforeStop func()
	timeout    time.Duration
}

// Start serves svc on lis, verifying passports with svc.Passport: its events runtime first (relay and consumer, on ev's broker), so
// that its first commit already wakes the relay, then the gRPC server with health, reflection,
// logging, recovery and metrics on reg. A service without a DB has no events runtime (ev is
// not used). A shutdownTimeout of 0 means DefaultShutdownTimeout.
func Start(ctx context.Context, svc Service, lis net.Listener, ev events.RuntimeConfig, reg prometheus.Registerer, log *slog.Logger, shutdownTimeout time.Duration) (*Running, error) {
	if svc.Passport == nil {
		return nil, errors.New("starting " + svc.Name + ": no passport verifier")
	}
	if shutdownTimeout <= 0 {
		shutdownTimeout = DefaultShutdownTimeout
	}
	if ev.Broker.Name == "" {
		ev.Broker.Name = svc.Name + "d"
	}
	ev.Broker.Logger, ev.Relay.Logger = log, log
	ev.Broker.Registerer, ev.Relay.Registerer = reg, reg
	ev.TracerProvider = svc.TracerProvider
	ev.Relay.Dialect = svc.Dialect
	var rt *events.Runtime
	if svc.DB != nil {
		var err error
		if rt, err = events.Start(ctx, svc.DB, svc.Consumer, ev); err != nil {
			return nil, err
		}
		if svc.SetNotify != nil {
			svc.SetNotify(rt.Notify)
		}
	}
	metrics, err := grpcserver.NewMetrics(reg)
	if err != nil {
		if rt != nil {
			rt.Close()
		}
		return nil, err
	}
	r := &Running{lis: lis, health: health.NewServer(), ev: rt, done: make(chan error, 1), beforeStop: svc.BeforeStop, timeout: shutdownTimeout}
	r.srv = grpcserver.New(grpcserver.Options{Logger: log, Health: r.health, Metrics: metrics, Services: []string{svc.ServiceName}, Passport: svc.Passport,
		TracerProvider: svc.TracerProvider, Extra: svc.ServerOptions})
	svc.Register(r.srv)
	go func() { r.done <- r.srv.Serve(lis) }()
	log.Info("serving", "addr", r.Addr())
	return r, nil
}

// Addr is the address the service listens on.
func (r *Running) Addr() string { return r.lis.Addr().String() }

// Done receives the server's error if it stops serving on its own.
func (r *Running) Done() <-chan error { return r.done }

// Stop runs BeforeStop, reports NOT_SERVING, drains the server (the shutdown timeout at most),
// then stops the consumer (waiting for the event in hand) and the relay. It returns the
// server's error, if serving had failed.
func (r *Running) Stop() error {
	if r.beforeStop != nil {
		r.beforeStop()
	}
	grpcserver.Stop(r.srv, r.health, r.timeout)
	err := <-r.done
	r.closeEvents()
	if errors.Is(err, grpc.ErrServerStopped) {
		err = nil
	}
	return err
}

// closeEvents stops the events runtime, if the service has one.
func (r *Running) closeEvents() {
	if r.ev != nil {
		r.ev.Close()
	}
}

// Run is a whole service binary after its store is open: the passport's keys (cfg.PassportJWKS,
// unless svc.Passport is set), the metrics endpoint (when cfg.MetricsListen is set), the service on cfg.Listen, "listening on <addr>" on stdout, then a
// graceful stop when ctx ends.
func Run(ctx context.Context, cfg Config, svc Service, log *slog.Logger, stdout io.Writer) error {
	if svc.Passport == nil {
		if cfg.PassportJWKS == "" {
			return errors.New("-passport-jwks (passport_jwks) is required: the JWKS file of the gateway's passport keys")
		}
		v, err := passport.NewVerifier(passport.Options{JWKSFile: cfg.PassportJWKS, Logger: log})
		if err != nil {
			return err
		}
		svc.Passport = v
		watchCtx, stopWatch := context.WithCancel(ctx)
		watched := make(chan struct{})
		go func() { defer close(watched); v.Watch(watchCtx) }() // an idle service takes a new key too
		defer func() { stopWatch(); <-watched }()
	}
	tlsOpts, err := cfg.TLS.serverOptions(log)
	if err != nil {
		return err
	}
	svc.ServerOptions = append(svc.ServerOptions, tlsOpts...)
	reg := svc.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector())
	if cfg.MetricsListen != "" {
		stop, err := serveMetrics(cfg.MetricsListen, reg, log)
		if err != nil {
			return err
		}
		defer stop()
	}
	if cfg.Events.Dir == "" {
		cfg.Events.Dir = filepath.Join(cfg.Data, "broker")
	}
	lis, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listening: %w", err)
	}
	r, err := Start(ctx, svc, lis, cfg.Events, reg, log, cfg.ShutdownTimeout)
	if err != nil {
		_ = lis.Close()
		return err
	}
	fmt.Fprintf(stdout, "listening on %s\n", r.Addr())
	select {
	case err = <-r.Done():
		r.closeEvents()
	case <-ctx.Done():
		err = r.Stop()
	}
	log.Info("stopped", "err", err)
	return err
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
