// Command orderd runs the order service (shop.order.v1.OrderService) on its own
// SQLite database (<data>/order/order.db), or with -database-url on PostgreSQL, where several
// replicas may share one database.
//
//	orderd -listen 127.0.0.1:9101 -data ./data -inventory-addr 127.0.0.1:9103 \
//	       -passport-jwks ./data/passport-jwks.json
//	orderd -config orderd.yaml
//	orderd -database-url postgres://shop@127.0.0.1:5432/shop ...   // tables in schema shop_order
//
// -passport-jwks (passport_jwks) is required: the JWKS file of the gateway's passport keys
// (`gateway passport-keys jwks`), read again every 5s; a call without a valid passport is
// anonymous, one with a bad passport is refused.
//
// -watch-notify-url postgres://... (watch_notify_url) makes WatchOrder see the changes other
// replicas commit at once, through PostgreSQL LISTEN/NOTIFY on -watch-notify-channel
// (watch_notify_channel, default shop_order_changed). Its default is -database-url when that is
// a PostgreSQL URL (replicas on one database wake each other), else off; "off" turns it off,
// and then another replica's change is seen at the next poll. The server must answer at
// startup; later outages are retried with backoff.
//
// Flags override the YAML file (the keys of svcmain.Config, inventory_addr, watch_notify_url
// and watch_notify_channel). It logs JSON to stderr, prints "listening on <addr>" to stdout once
// serving, and stops gracefully on SIGTERM or SIGINT, ending its watch streams first.
//
// Tracing follows the standard OTEL_* variables (internal/telemetry): off unless
// OTEL_TRACES_EXPORTER is otlp or console; service.name defaults to "order".
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/acme/shopgate/cmd/internal/svcmain"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/internal/buildinfo"
	"github.com/acme/shopgate/internal/telemetry"
	"github.com/acme/shopgate/services/order"
	"github.com/acme/shopgate/services/pgnotify"
	"github.com/acme/shopgate/services/storage"
	"github.com/prometheus/client_golang/prometheus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "orderd:", err)
		os.Exit(1)
	}
}

// config is the YAML file's shape; flags of the same name override it.
type config struct {
	svcmain.Config `yaml:",inline"`
	// InventoryAddr is the inventory service's gRPC address (orders are priced through it).
	// Default: 127.0.0.1:9103.
	InventoryAddr string `yaml:"inventory_addr"`
	// WatchNotifyURL is the PostgreSQL server through which the replicas tell each other which
	// order changed (LISTEN/NOTIFY), so that WatchOrder sees another replica's change at once.
	// Default: DatabaseURL when it is a PostgreSQL URL, else off; "off": off (another
	// replica's change is seen at the next poll).
	WatchNotifyURL string `yaml:"watch_notify_url"`
	// WatchNotifyChannel is the LISTEN/NOTIFY channel; every replica must use the same one.
	// Default: shop_order_changed.
	WatchNotifyChannel string `yaml:"watch_notify_channel"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if buildinfo.PrintIfRequested(args, stdout, "orderd") {
		return nil
	}
	cfg := config{Config: svcmain.Defaults("127.0.0.1:9101"), InventoryAddr: "127.0.0.1:9103", WatchNotifyChannel: pgnotify.DefaultChannel}
	err := svcmain.Load("orderd", args, stderr, &cfg, func(fs *flag.FlagSet) {
		cfg.Flags(fs, "order/order.db")
		fs.StringVar(&cfg.InventoryAddr, "inventory-addr", cfg.InventoryAddr, "inventory service: host:port, a comma-separated list (balanced, health-checked), or a gRPC target (dns:///name:port)")
		fs.StringVar(&cfg.WatchNotifyURL, "watch-notify-url", cfg.WatchNotifyURL, "PostgreSQL URL (postgres://...) through which replicas wake each other's watch streams (LISTEN/NOTIFY); default -database-url when it is PostgreSQL; off: other replicas' changes are seen at the next poll")
		fs.StringVar(&cfg.WatchNotifyChannel, "watch-notify-channel", cfg.WatchNotifyChannel, "LISTEN/NOTIFY channel of -watch-notify-url, the same on every replica")
	})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := svcmain.NewLogger(stderr, cfg.LogLevel, "order")
	if err != nil {
		return err
	}
	tr, stopTracing, err := telemetry.Start(ctx, telemetry.Options{Role: "order"}, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	reg := prometheus.NewRegistry()
	dial, err := cfg.NewDialer(reg, tr.Provider, log)
	if err != nil {
		return err
	}
	invConn, err := dial("inventory", cfg.InventoryAddr)
	if err != nil {
		return err
	}
	defer invConn.Close()
	store, err := order.Open(ctx, cfg.Source("order/order.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	opts := order.Options{Logger: log}
	if cfg.WatchNotifyURL == "" && storage.IsPostgres(cfg.DatabaseURL) {
		cfg.WatchNotifyURL = cfg.DatabaseURL
	}
	if cfg.WatchNotifyURL != "" && cfg.WatchNotifyURL != "off" {
		feed, err := pgnotify.Open(ctx, cfg.WatchNotifyURL, pgnotify.Options{Channel: cfg.WatchNotifyChannel, Logger: log, Registerer: reg})
		if err != nil {
			return fmt.Errorf("-watch-notify-url: %w", err)
		}
		defer feed.Close() // after Run: the service's streams are over by then
		opts.Changes = feed
	}
	svc := order.New(store, inventoryv1.NewInventoryServiceClient(invConn), opts)
	reg.MustRegister(order.PendingCollector(store, log, nil))
	return svcmain.Run(ctx, cfg.Config, svcmain.Service{
		Name:           "order",
		ServiceName:    orderv1.OrderService_ServiceDesc.ServiceName,
		DB:             store.DB(),
		Dialect:        store.Dialect(),
		Consumer:       svc.Subscriptions(),
		Register:       svc.Register,
		SetNotify:      svc.SetNotify,
		BeforeStop:     svc.Close, // ends WatchOrder streams, which would otherwise hold the drain
		Registry:       reg,
		TracerProvider: tr.Provider,
	}, log, stdout)
}
