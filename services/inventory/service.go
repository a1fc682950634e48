package inventory

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/passport"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Consumer is the inventory service's consumer name in the events inbox and on the broker.
const Consumer = "inventory"

// Source names the inventory service in the envelopes it records.
const Source = "inventory"

// Pagination of ListItems.
const (
	DefaultPageSize = 50
	MaxPageSize     = 100
)

// Options configures New. The zero value means the defaults.
type Options struct {
	// Logger receives internal errors and saga decisions. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
	// OnCommit is called after each commit that appended outbox rows. Default: none; SetNotify
	// can set it later.
	OnCommit func()
}

// Service implements shop.inventory.v1.InventoryService and the inventory saga handlers.
type Service struct {
	inventoryv1.UnimplementedInventoryServiceServer

	store  Store
	log    *slog.Logger
	notify atomic.Pointer[func()]
	saga   events.Saga[Tx]
}

// New returns the inventory service on store.
func New(store Store, opts Options) *Service {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Service{store: store, log: opts.Logger}
	s.saga = events.Saga[Tx]{Source: Source, Update: store.Update, Now: opts.Now, Log: opts.Logger, Committed: s.committed}
	if opts.OnCommit != nil {
		s.SetNotify(opts.OnCommit)
	}
	return s
}

// Register registers the service on srv.
func (s *Service) Register(srv grpc.ServiceRegistrar) {
	inventoryv1.RegisterInventoryServiceServer(srv, s)
}

// SetNotify sets the function called after each commit that appended outbox rows (the relay's
// wake-up), replacing any earlier one. Safe to call while serving.
func (s *Service) SetNotify(fn func()) { s.notify.Store(&fn) }

// committed runs after a commit (it is the saga's Committed): it wakes the relay when events
// were appended.
func (s *Service) committed(_ string, appended bool) {
	if !appended {
		return
	}
	if fn := s.notify.Load(); fn != nil && *fn != nil {
		(*fn)()
	}
}

// GetItem implements InventoryServiceServer. Public.
func (s *Service) GetItem(ctx context.Context, req *inventoryv1.GetItemRequest) (*inventoryv1.Item, error) {
	if err := validateSKU("sku", req.GetSku()); err != nil {
		return nil, err
	}
	it, err := s.store.GetItem(ctx, req.GetSku())
	if errors.Is(err, ErrNotFound) {
		return nil, status.Error(codes.NotFound, "item not found")
	}
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "get item", err)
	}
	return it, nil
}

// ListItems implements InventoryServiceServer. Public.
func (s *Service) ListItems(ctx context.Context, req *inventoryv1.ListItemsRequest) (*inventoryv1.ListItemsResponse, error) {
	size, err := pageSize(req.GetPageSize())
	if err != nil {
		return nil, err
	}
	after, err := decodePageToken(req.GetPageToken())
	if err != nil {
		return nil, grpcserver.InvalidArgument("page_token", "invalid page token")
	}
	items, err := s.store.ListItems(ctx, after, size+1)
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "list items", err)
	}
	resp := &inventoryv1.ListItemsResponse{Items: items}
	if len(items) > size {
		resp.Items = items[:size]
		resp.NextPageToken = encodePageToken(items[size-1].GetSku())
	}
	return resp, nil
}

// UpsertItem implements InventoryServiceServer. Admins only. reserved is ignored on input and
// kept: the admin sets the available units.
func (s *Service) UpsertItem(ctx context.Context, req *inventoryv1.UpsertItemRequest) (*inventoryv1.Item, error) {
	if _, err := passport.RequireRole(ctx, passport.RoleAdmin); err != nil {
		return nil, err
	}
	if err := validateItem(req.GetItem()); err != nil {
		return nil, err
	}
	var out *inventoryv1.Item
	err := s.store.Update(ctx, func(tx Tx) error {
		if err := tx.PutItem(ctx, req.GetItem()); err != nil {
			return err
		}
		var err error
		out, err = tx.Item(ctx, req.GetItem().GetSku())
		return err
	})
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "upsert item", err)
	}
	return out, nil
}

func pageSize(n int32) (int, error) {
	switch {
	case n == 0:
		return DefaultPageSize, nil
	case n < 0 || n > MaxPageSize:
		return 0, grpcserver.InvalidArgument("page_size", "must be between 1 and 100")
	}
	return int(n), nil
}
