package storefront

import (
	"context"
	"log/slog"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/services/passport"
)

// Defaults of Options, and the bounds of GetHome's page sizes.
const (
	DefaultDependencyTimeout = 800 * time.Millisecond
	DefaultReserve           = 50 * time.Millisecond
	DefaultMaxParallel       = 8

	DefaultOrdersPageSize    = 5
	MaxOrdersPageSize        = 20
	DefaultCataloguePageSize = 10
	MaxCataloguePageSize     = 50
)

// The names of the parts an answer may miss (the `missing` field).
const (
	PartItems     = "items"
	PartPayment   = "payment"
	PartOrders    = "orders"
	PartCatalogue = "catalogue"
)

// mdRequestID is the metadata key of the request id, passed on beside the passport.
const mdRequestID = "x-request-id"

// Options configures New. The zero value means the defaults.
type Options struct {
	// DependencyTimeout bounds the optional parts of an answer (items, payment, orders,
	// catalogue), all together, from the call's start. Default: DefaultDependencyTimeout (800ms).
	DependencyTimeout time.Duration
	// Reserve is kept from the call's own deadline for answering: the optional parts end at the
	// deadline minus Reserve at the latest. Default: DefaultReserve (50ms).
	Reserve time.Duration
	// MaxParallel bounds the item lookups of one order view in flight at once. Default:
	// DefaultMaxParallel (8).
	MaxParallel int
	// Logger receives the dependencies' failures. Default: slog.Default().
	Logger *slog.Logger
	// Metrics counts partial answers. Default: none.
	Metrics *Metrics
}

// Clients are the services the storefront composes.
type Clients struct {
	Orders    orderv1.OrderServiceClient
	Inventory inventoryv1.InventoryServiceClient
	Payments  paymentv1.PaymentServiceClient
}

// Service implements shop.storefront.v1.StorefrontService.
type Service struct {
	storefrontv1.UnimplementedStorefrontServiceServer

	deps Clients
	opts Options
}

// New returns the storefront over deps.
func New(deps Clients, opts Options) *Service {
	if opts.DependencyTimeout <= 0 {
		opts.DependencyTimeout = DefaultDependencyTimeout
	}
	if opts.Reserve <= 0 {
		opts.Reserve = DefaultReserve
	}
	if opts.MaxParallel <= 0 {
		opts.MaxParallel = DefaultMaxParallel
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Service{deps: deps, opts: opts}
}

// Register registers the service on srv.
func (s *Service) Register(srv grpc.ServiceRegistrar) {
	storefrontv1.RegisterStorefrontServiceServer(srv, s)
}

// onBehalf returns the context of the calls to the dependencies: ctx (its deadline and
// cancellation) with the caller's passport and request id as outgoing metadata, and nothing
// else of the incoming metadata. It refuses a call without a verified caller.
func onBehalf(ctx context.Context) (context.Context, error) {
	if _, err := passport.Require(ctx); err != nil {
		return nil, err
	}
	in, _ := metadata.FromIncomingContext(ctx)
	out := metadata.MD{passport.MDPassport: in.Get(passport.MDPassport)}
	if id := in.Get(mdRequestID); len(id) == 1 {
		out.Set(mdRequestID, id[0])
	}
	return metadata.NewOutgoingContext(ctx, out), nil
}

// budget returns the context of the optional parts: ctx ending after DependencyTimeout, or at
// ctx's deadline minus Reserve when that is sooner.
func (s *Service) budget(ctx context.Context) (context.Context, context.CancelFunc) {
	end := time.Now().Add(s.opts.DependencyTimeout)
	if d, ok := ctx.Deadline(); ok && d.Add(-s.opts.Reserve).Before(end) {
		end = d.Add(-s.opts.Reserve)
	}
	return context.WithDeadline(ctx, end)
}
