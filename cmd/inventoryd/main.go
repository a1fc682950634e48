// Command inventoryd runs the inventory service (shop.inventory.v1.InventoryService) on its own
// SQLite database (<data>/inventory/inventory.db), or with -database-url on PostgreSQL, where
// several replicas may share one database.
//
//	inventoryd -listen 127.0.0.1:9103 -data ./data -seed -passport-jwks ./data/passport-jwks.json
//	inventoryd -config inventoryd.yaml
//	inventoryd -database-url postgres://shop@127.0.0.1:5432/shop ...   // tables in schema shop_inventory
//
// -passport-jwks (passport_jwks) is required: the JWKS file of the gateway's passport keys
// (`gateway passport-keys jwks`), read again every 5s; a call without a valid passport is
// anonymous, one with a bad passport is refused.
//
// Flags override the YAML file (the keys of svcmain.Config, and seed). It logs JSON to stderr,
// prints "listening on <addr>" to stdout once serving, and stops gracefully on SIGTERM or SIGINT.
//
// Tracing follows the standard OTEL_* variables (internal/telemetry): off unless
// OTEL_TRACES_EXPORTER is otlp or console; service.name defaults to "inventory".
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
	"github.com/acme/shopgate/internal/buildinfo"
	"github.com/acme/shopgate/internal/telemetry"
	"github.com/acme/shopgate/services/inventory"
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
	svcmain.Config `yaml:",inline"`
	// Seed adds the demo items when the catalogue is empty. Default: false.
	Seed bool `yaml:"seed"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if buildinfo.PrintIfRequested(args, stdout, "inventoryd") {
		return nil
	}
	cfg := config{Config: svcmain.Defaults("127.0.0.1:9103")}
	err := svcmain.Load("inventoryd", args, stderr, &cfg, func(fs *flag.FlagSet) {
		cfg.Flags(fs, "inventory/inventory.db")
		fs.BoolVar(&cfg.Seed, "seed", cfg.Seed, "add demo items when the catalogue is empty")
	})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := svcmain.NewLogger(stderr, cfg.LogLevel, "inventory")
	if err != nil {
		return err
	}
	tr, stopTracing, err := telemetry.Start(ctx, telemetry.Options{Role: "inventory"}, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	store, err := inventory.Open(ctx, cfg.Source("inventory/inventory.db"))
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
	return svcmain.Run(ctx, cfg.Config, svcmain.Service{
		Name:           "inventory",
		ServiceName:    inventoryv1.InventoryService_ServiceDesc.ServiceName,
		DB:             store.DB(),
		Dialect:        store.Dialect(),
		Consumer:       svc.Subscriptions(),
		Register:       svc.Register,
		SetNotify:      svc.SetNotify,
		TracerProvider: tr.Provider,
	}, log, stdout)
}
