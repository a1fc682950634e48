// Command shop runs the whole stack in one process, for a first run and for demos: the gateway
// on 127.0.0.1:8080, the inventory, payment and order services and the storefront (the front
// server composing them) on loopback gRPC ports of their own, one embedded NATS JetStream
// broker the three services share, and their SQLite databases, all under one data folder. Nothing else needs to be installed or started.
//
//	shop -data ./data                     what `make run` starts
//	shop -data ./data -config gw.yaml     the gateway's YAML too (its upstreams are filled in;
//	                                      SIGHUP or a change of the file reloads it; GATEWAY__
//	                                      variables override its settings, as in cmd/gateway)
//
// The gateway trusts the development key under <data>/devkeys (made on first start, mode 0600;
// `go run ./cmd/devtoken` mints tokens with it) and publishes its public half at
// /.well-known/jwks.json. It signs the services' passports with the newest key under
// <data>/passport (one is made on first start, mode 0600), whose public keys the in-process
// services are handed at start: no setup. The inventory is seeded with demo items when it is empty. Logs are
// JSON on stderr; "gateway listening on <addr>" is printed to stdout once serving. SIGTERM or
// SIGINT stops the stack gracefully: watch streams end, in-flight requests finish, then the
// services, the broker and the databases close.
//
// Tracing follows the standard OTEL_* variables (internal/telemetry), off by default; each
// part is traced as its own service (gateway, order, payment, inventory, storefront), and
// OTEL_SERVICE_NAME, if set, becomes their service.namespace.
package main

import (
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

	"github.com/acme/shopgate/cmd/internal/gwmain"
	"github.com/acme/shopgate/cmd/internal/svcmain"
	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/passport"
	"github.com/acme/shopgate/gateway/server"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/internal/buildinfo"
	"github.com/acme/shopgate/internal/devkey"
	"github.com/acme/shopgate/internal/shopapi"
	"github.com/acme/shopgate/internal/telemetry/wire"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/inventory"
	"github.com/acme/shopgate/services/order"
	spassport "github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/payment"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "shop:", err)
		os.Exit(1)
	}
}

// options are the command line.
type options struct {
	data     string // the data folder
	listen   string // the gateway's address; "" keeps the config's (default 127.0.0.1:8080)
	config   string // the gateway's YAML; "" means the defaults
	logLevel string
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	var o options
	fs := flag.NewFlagSet("shop", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.data, "data", "./data", "data folder: databases, broker, development key")
	fs.StringVar(&o.listen, "listen", "", "gateway HTTP listen address (default: the config's, 127.0.0.1:8080)")
	fs.StringVar(&o.config, "config", "", "gateway YAML configuration; its upstreams are set by shop")
	fs.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	buildinfo.Flag(fs) // answered by run before parsing
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	if fs.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	return o, nil
}

// run is the whole program: it returns when ctx ends (after a graceful shutdown) or on error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if buildinfo.PrintIfRequested(args, stdout, "shop") {
		return nil
	}
	o, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return fmt.Errorf("log level: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: level}))
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), buildinfo.Collector())

	key, err := devkey.LoadOrCreate(filepath.Join(o.data, "devkeys"))
	if err != nil {
		return fmt.Errorf("development key: %w", err)
	}
	passportDir := filepath.Join(o.data, "passport")
	verifier, err := passportVerifier(passportDir, logger)
	if err != nil {
		return err
	}
	broker, err := events.StartEmbedded(filepath.Join(o.data, "broker"), events.EmbeddedConfig{})
	if err != nil {
		return err
	}
	defer broker.Close() // last: after every service disconnected

	tracing, stopTracing, err := startTracing(ctx, logger)
	if err != nil {
		return err
	}
	defer stopTracing() // runs after the parts' stops, deferred below
	deps := deps{ctx: ctx, logger: logger, reg: reg, broker: broker, passport: verifier, tracing: tracing}

	// inventory first (the order service prices orders through it), then payment, then order.
	invStore, err := inventory.OpenSQLite(filepath.Join(o.data, "inventory", "inventory.db"))
	if err != nil {
		return err
	}
	defer invStore.Close()
	if err := inventory.SeedDemo(ctx, invStore); err != nil {
		return err
	}
	inv := inventory.New(invStore, inventory.Options{Logger: deps.log("inventory")})
	invB, err := deps.start(svcmain.Service{Name: "inventory", ServiceName: inventoryv1.InventoryService_ServiceDesc.ServiceName,
		DB: invStore.DB(), Consumer: inv.Subscriptions(), Register: inv.Register, SetNotify: inv.SetNotify})
	if err != nil {
		return err
	}
	defer invB.Stop()

	payStore, err := payment.OpenSQLite(filepath.Join(o.data, "payment", "payment.db"))
	if err != nil {
		return err
	}
	defer payStore.Close()
	pay := payment.New(payStore, payment.Options{Logger: deps.log("payment")})
	payB, err := deps.start(svcmain.Service{Name: "payment", ServiceName: paymentv1.PaymentService_ServiceDesc.ServiceName,
		DB: payStore.DB(), Consumer: pay.Subscriptions(), Register: pay.Register, SetNotify: pay.SetNotify})
	if err != nil {
		return err
	}
	defer payB.Stop()

	invConn, err := grpc.NewClient(invB.Addr(), append(wire.GRPCDialOptions(tracing["order"]),
		grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		return fmt.Errorf("inventory client: %w", err)
	}
	defer invConn.Close()
	ordStore, err := order.OpenSQLite(filepath.Join(o.data, "order", "order.db"))
	if err != nil {
		return err
	}
	defer ordStore.Close()
	reg.MustRegister(order.PendingCollector(ordStore, deps.log("order"), nil))
	ord := order.New(ordStore, inventoryv1.NewInventoryServiceClient(invConn), order.Options{Logger: deps.log("order")})
	ordB, err := deps.start(svcmain.Service{Name: "order", ServiceName: orderv1.OrderService_ServiceDesc.ServiceName,
		DB: ordStore.DB(), Consumer: ord.Subscriptions(), Register: ord.Register, SetNotify: ord.SetNotify})
	if err != nil {
		return err
	}
	defer ordB.Stop()

	sfB, err := deps.startStorefront(ordB.Addr(), invB.Addr(), payB.Addr())
	if err != nil {
		return err
	}
	defer sfB.Stop() // first of the services: it calls the others

	upstreams := map[string]config.Upstream{
		inventoryv1.InventoryService_ServiceDesc.ServiceName:   {Addresses: []string{invB.Addr()}},
		paymentv1.PaymentService_ServiceDesc.ServiceName:       {Addresses: []string{payB.Addr()}},
		orderv1.OrderService_ServiceDesc.ServiceName:           {Addresses: []string{ordB.Addr()}},
		storefrontv1.StorefrontService_ServiceDesc.ServiceName: {Addresses: []string{sfB.Addr()}},
	}
	load := func() (*config.Config, error) { return gatewayConfig(o, upstreams, key, passportDir) }
	cfg, err := load()
	if err != nil {
		return err
	}
	api, err := shopapi.OpenAPI()
	if err != nil {
		return err
	}
	gw, err := server.New(cfg, server.Options{
		Services:       shopapi.Services(),
		OpenAPI:        api,
		Logger:         logger.With("service", "gateway"),
		Registerer:     reg,
		Handlers:       map[string]http.Handler{devkey.JWKSPath: key.Handler()},
		TracerProvider: tracing["gateway"],
	})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		_ = gw.Close()
		return fmt.Errorf("gateway listening: %w", err)
	}
	admin, err := gwmain.ListenAdmin(cfg, logger) // only when the file sets server.admin_listen
	if err != nil {
		_ = ln.Close()
		_ = gw.Close()
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP) // before the listening line: a supervisor may reload at once
	defer signal.Stop(hup)
	logger.Info("gateway listening", slog.String("addr", ln.Addr().String()), slog.String("data", o.data))
	fmt.Fprintf(stdout, "gateway listening on %s\n", ln.Addr())
	loop := gwmain.Loop{
		Server: gw, Logger: logger, Path: o.config, Load: load, ShutdownTimeout: cfg.Server.ShutdownTimeout,
		BeforeShutdown: ord.Close, // end the :watch streams first, or they would hold the drain
		Watch:          cfg.Server.WatchConfig,
		Admin:          admin, // no DrainDelay: one process, no replica to move to; Ctrl-C stops at once
	}
	return loop.Serve(ctx, ln, hup) // then the deferred stops: services, stores, broker
}

// passportVerifier makes the passport key folder's first key if it has none, and returns the
// services' verifier trusting its keys as they are now (restart shop after changing them).
func passportVerifier(dir string, logger *slog.Logger) (*spassport.Verifier, error) {
	if err := passport.EnsureKey(dir); err != nil {
		return nil, fmt.Errorf("passport key: %w", err)
	}
	jwks, err := passport.JWKSOf(dir)
	if err != nil {
		return nil, fmt.Errorf("passport key: %w", err)
	}
	return spassport.NewVerifier(spassport.Options{JWKS: jwks, Logger: logger})
}

// gatewayConfig is the gateway's configuration: the YAML file when there is one (else the
// defaults), the -listen flag, the in-process upstreams, trust in the development key, and the
// passport key folder.
func gatewayConfig(o options, upstreams map[string]config.Upstream, key *devkey.Key, passportDir string) (*config.Config, error) {
	var cfg *config.Config
	var err error
	if o.config != "" {
		cfg, err = config.LoadEnv(o.config, os.Environ()) // GATEWAY__... overrides, as cmd/gateway
	} else {
		cfg, err = config.ParseEnv(nil, os.Environ())
	}
	if err != nil {
		return nil, err
	}
	if len(cfg.Upstreams) > 0 {
		return nil, errors.New("gateway config: upstreams are set by shop; leave them out of the file")
	}
	if o.listen != "" {
		cfg.Listen = o.listen
	}
	if cfg.Passport.KeyDir != "" {
		return nil, errors.New("gateway config: passport.key_dir is set by shop (<data>/passport); leave it out of the file")
	}
	cfg.Upstreams = upstreams
	cfg.Passport.KeyDir = passportDir
	cfg.Auth.Sources = append(cfg.Auth.Sources, key.AuthSource())
	return cfg, nil
}
