// Command paymentd runs the payment service (shop.payment.v1.PaymentService) on its own
// SQLite database (<data>/payment/payment.db), or with -database-url on PostgreSQL, where several
// replicas may share one database.
//
//	paymentd -listen 127.0.0.1:9102 -data ./data -passport-jwks ./data/passport-jwks.json
//	paymentd -config paymentd.yaml
//	paymentd -database-url postgres://shop@127.0.0.1:5432/shop ...   // tables in schema shop_payment
//
// -passport-jwks (passport_jwks) is required: the JWKS file of the gateway's passport keys
// (`gateway passport-keys jwks`), read again every 5s; a call without a valid passport is
// anonymous, one with a bad passport is refused.
//
// Flags override the YAML file (the keys of svcmain.Config). It logs JSON to stderr, prints
// "listening on <addr>" to stdout once serving, and stops gracefully on SIGTERM or SIGINT.
//
// Tracing follows the standard OTEL_* variables (internal/telemetry): off unless
// OTEL_TRACES_EXPORTER is otlp or console; service.name defaults to "payment".
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
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/internal/buildinfo"
	"github.com/acme/shopgate/internal/telemetry"
	"github.com/acme/shopgate/services/payment"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "paymentd:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if buildinfo.PrintIfRequested(args, stdout, "paymentd") {
		return nil
	}
	cfg := svcmain.Defaults("127.0.0.1:9102")
	err := svcmain.Load("paymentd", args, stderr, &cfg, func(fs *flag.FlagSet) {
		cfg.Flags(fs, "payment/payment.db")
	})
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	log, err := svcmain.NewLogger(stderr, cfg.LogLevel, "payment")
	if err != nil {
		return err
	}
	tr, stopTracing, err := telemetry.Start(ctx, telemetry.Options{Role: "payment"}, log)
	if err != nil {
		return err
	}
	defer stopTracing()
	store, err := payment.Open(ctx, cfg.Source("payment/payment.db"))
	if err != nil {
		return err
	}
	defer store.Close()
	svc := payment.New(store, payment.Options{Logger: log})
	return svcmain.Run(ctx, cfg, svcmain.Service{
		Name:           "payment",
		ServiceName:    paymentv1.PaymentService_ServiceDesc.ServiceName,
		DB:             store.DB(),
		Dialect:        store.Dialect(),
		Consumer:       svc.Subscriptions(),
		Register:       svc.Register,
		SetNotify:      svc.SetNotify,
		TracerProvider: tr.Provider,
	}, log, stdout)
}
