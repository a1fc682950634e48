package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"

	"github.com/acme/shopgate/cmd/internal/svcmain"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/internal/telemetry/wire"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/grpcclient"
	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/storefront"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
)

// deps is what every service of the stack shares.
type deps struct {
	ctx      context.Context
	logger   *slog.Logger
	reg      *prometheus.Registry
	broker   *events.Embedded
	passport *passport.Verifier              // the gateway's passport keys, shared by the services
	tracing  map[string]trace.TracerProvider // each part's, by role (startTracing); nil values: off
}

func (d deps) log(service string) *slog.Logger { return d.logger.With("service", service) }

// start serves one service of the stack on a free loopback port, its events on the shared
// broker. Stop it (svcmain.Running.Stop) before the broker closes.
func (d deps) start(svc svcmain.Service) (*svcmain.Running, error) {
	svc.Passport = d.passport
	svc.TracerProvider = d.tracing[svc.Name]
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

// storefrontB is the running storefront and the connections it calls the services through.
type storefrontB struct {
	*svcmain.Running
	conns []*grpc.ClientConn
}

// Stop stops the storefront, then closes its connections.
func (s *storefrontB) Stop() error {
	err := s.Running.Stop()
	for _, cc := range s.conns {
		_ = cc.Close()
	}
	return err
}

// startStorefront serves the storefront on a free loopback port, calling the order, inventory
// and payment services at the given addresses (as storefrontd would). Stop it before them.
func (d deps) startStorefront(orderAddr, inventoryAddr, paymentAddr string) (*storefrontB, error) {
	b := &storefrontB{}
	fail := func(err error) (*storefrontB, error) {
		for _, cc := range b.conns {
			_ = cc.Close()
		}
		return nil, fmt.Errorf("storefront: %w", err)
	}
	for _, a := range [][2]string{{"order", orderAddr}, {"inventory", inventoryAddr}, {"payment", paymentAddr}} {
		cc, err := grpcclient.Dial(a[0], a[1], wire.GRPCDialOptions(d.tracing["storefront"])...)
		if err != nil {
			return fail(err)
		}
		b.conns = append(b.conns, cc)
	}
	metrics, err := storefront.NewMetrics(d.reg)
	if err != nil {
		return fail(err)
	}
	sf := storefront.New(storefront.Clients{
		Orders:    orderv1.NewOrderServiceClient(b.conns[0]),
		Inventory: inventoryv1.NewInventoryServiceClient(b.conns[1]),
		Payments:  paymentv1.NewPaymentServiceClient(b.conns[2]),
	}, storefront.Options{Logger: d.log("storefront"), Metrics: metrics})
	if b.Running, err = d.start(svcmain.Service{Name: "storefront", ServiceName: storefrontv1.StorefrontService_ServiceDesc.ServiceName, Register: sf.Register}); err != nil {
		_, _ = fail(nil)
		return nil, err // named by start
	}
	return b, nil
}
