// Command storefrontd runs the storefront, the shop's front server
// (shop.storefront.v1.StorefrontService): it composes the order, inventory and payment services
// for an app's screens, calling them with the caller's passport. It has no database and
// consumes no events.
//
//	storefrontd -listen 127.0.0.1:9104 -passport-jwks ./data/passport-jwks.json \
//	            -order-addr 127.0.0.1:9101 -inventory-addr 127.0.0.1:9103 -payment-addr 127.0.0.1:9102
//	storefrontd -config storefrontd.yaml
//
// -passport-jwks (passport_jwks) is required: the JWKS file of the gateway's passport keys; a
// call without a valid passport is refused. Each -*-addr takes host:port, a comma-separated
// list (balanced round robin, health-checked), or a gRPC target (dns:///name:port).
// -dependency-timeout (default 800ms) bounds the optional parts of an answer: what is not in by
// then is left out and named in the answer's `missing` field.
//
// Flags override the YAML file (listen, metrics_listen, shutdown_timeout, log_level,
// passport_jwks, order_addr, inventory_addr, payment_addr, dependency_timeout). It logs JSON to
// stderr, prints "listening on <addr>" to stdout once serving, and stops gracefully on SIGTERM
// or SIGINT.
//
// Tracing follows the standard OTEL_* variables (internal/telemetry): off unless
// OTEL_TRACES_EXPORTER is otlp or console; service.name defaults to "storefront".
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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/acme/shopgate/cmd/internal/svcmain"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/internal/buildinfo"
	"github.com/acme/shopgate/internal/telemetry"
	"github.com/acme/shopgate/services/storefront"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "storefrontd:", err)
		os.Exit(1)
	}
}

// config is the YAML file's shape; flags of the same name override it.
type config struct {
	svcmain.Config `yaml:",inline"`
	// OrderAddr is the order service. Default: 127.0.0.1:9101.
	OrderAddr string `yaml:"order_addr"`
	// InventoryAddr is the inventory service. Default: 127.0.0.1:9103.
	InventoryAddr string `yaml:"inventory_addr"`
	// PaymentAddr is the payment service. Default: 127.0.0.1:9102.
	PaymentAddr string `yaml:"payment_addr"`
	// DependencyTimeout bounds the optional parts of an answer. Default:
	// storefront.DefaultDependencyTimeout (800ms).
	DependencyTimeout time.Duration `yaml:"dependency_timeout"`
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if buildinfo.PrintIfRequested(args, stdout, "storefrontd") {
		return nil
	}
	cfg := config{Config: svcmain.Defaults("127.0.0.1:9104"), OrderAddr: "127.0.0.1:9101", InventoryAddr: "127.0.0.1:9103",
		PaymentAddr: "127.0.0.1:9102", DependencyTimeout: storefront.DefaultDependencyTimeout}
	err := svcmain.Load("storefrontd", args, stderr, &cfg, func(fs *flag.FlagSet) {
		cfg.ServerFlags(fs)
		const addr = ": host:port, a comma-separated list (balanced, health-checked), or a gRPC target (dns:///name:port)"
		fs.StringVar(&cfg.OrderAddr, "order-addr", cfg.OrderAddr, "order service"+addr)
		fs.StringVar(&cfg.InventoryAddr, "inventory-addr", cfg.InventoryAddr, "inventory service"+addr)
		fs.StringVar(&cfg.PaymentAddr, "payment-addr", cfg.PaymentAddr, "payment service"+addr)
		fs.DurationVar(&cfg.DependencyTimeout, "dependency-timeout", cfg.DependencyTimeout, "bound on the optional parts of an answer (items, payment, orders, catalogue)")
	})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if cfg.DependencyTimeout <= 0 {
		return fmt.Errorf("-dependency-timeout %s: want a positive duration", cfg.DependencyTimeout)
	}
	log, err := svcmain.NewLogger(stderr, cfg.LogLevel, "storefront")
	if err != nil {
		return err
	}
	tr, stopTracing, err := telemetry.Start(ctx, telemetry.Options{Role: "storefront"}, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	reg := prometheus.NewRegistry()
	dial, err := cfg.NewDialer(reg, tr.Provider, log)
	if err != nil {
		return err
	}
	var conns [3]*grpc.ClientConn
	for i, d := range [3][2]string{{"order", cfg.OrderAddr}, {"inventory", cfg.InventoryAddr}, {"payment", cfg.PaymentAddr}} {
		if conns[i], err = dial(d[0], d[1]); err != nil {
			return err
		}
		defer conns[i].Close()
	}
	clients := storefront.Clients{
		Orders:    orderv1.NewOrderServiceClient(conns[0]),
		Inventory: inventoryv1.NewInventoryServiceClient(conns[1]),
		Payments:  paymentv1.NewPaymentServiceClient(conns[2]),
	}
	metrics, err := storefront.NewMetrics(reg)
	if err != nil {
		return err
	}
	svc := storefront.New(clients, storefront.Options{DependencyTimeout: cfg.DependencyTimeout, Logger: log, Metrics: metrics})
	return svcmain.Run(ctx, cfg.Config, svcmain.Service{
		Name:           "storefront",
		ServiceName:    storefrontv1.StorefrontService_ServiceDesc.ServiceName,
		Register:       svc.Register,
		Registry:       reg,
		TracerProvider: tr.Provider,
	}, log, stdout)
}
