package storefront

import (
	"context"
	"slices"
	"sync"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/services/grpcserver"
)

// GetHome implements StorefrontServiceServer (see the package doc): the caller's recent
// orders and the catalogue's first page, in parallel, each within the budget of optional
// parts. It fails only when both are missing, with the orders' error.
func (s *Service) GetHome(ctx context.Context, req *storefrontv1.GetHomeRequest) (*storefrontv1.Home, error) {
	ordersSize, err := pageSize("orders_page_size", req.GetOrdersPageSize(), DefaultOrdersPageSize, MaxOrdersPageSize)
	if err != nil {
		return nil, err
	}
	catalogueSize, err := pageSize("catalogue_page_size", req.GetCataloguePageSize(), DefaultCataloguePageSize, MaxCataloguePageSize)
	if err != nil {
		return nil, err
	}
	out, err := onBehalf(ctx)
	if err != nil {
		return nil, err
	}
	opt, cancel := s.budget(out)
	defer cancel()

	var (
		wg                sync.WaitGroup
		orders            *orderv1.ListOrdersResponse
		catalogue         *inventoryv1.ListItemsResponse
		ordersErr, catErr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		orders, ordersErr = s.deps.Orders.ListOrders(opt, &orderv1.ListOrdersRequest{PageSize: ordersSize})
	}()
	go func() {
		defer wg.Done()
		catalogue, catErr = s.deps.Inventory.ListItems(opt, &inventoryv1.ListItemsRequest{PageSize: catalogueSize})
	}()
	wg.Wait()

	if ordersErr != nil && catErr != nil {
		s.optional(ctx, "inventory", PartCatalogue, catErr)
		return nil, s.required(ctx, "order", "home", ordersErr)
	}
	home := &storefrontv1.Home{}
	if ordersErr != nil {
		s.optional(ctx, "order", PartOrders, ordersErr)
		home.Missing = append(home.Missing, PartOrders)
	} else {
		home.RecentOrders = orders.GetOrders()
	}
	if catErr != nil {
		s.optional(ctx, "inventory", PartCatalogue, catErr)
		home.Missing = append(home.Missing, PartCatalogue)
	} else {
		home.Catalogue, home.CatalogueNextPageToken = catalogue.GetItems(), catalogue.GetNextPageToken()
	}
	slices.Sort(home.Missing)
	s.opts.Metrics.count("GetHome", home.Missing)
	return home, nil
}

// pageSize returns n, def when n is 0, max when n is larger; a negative n is INVALID_ARGUMENT.
func pageSize(field string, n, def, max int32) (int32, error) {
	switch {
	case n < 0:
		return 0, grpcserver.InvalidArgument(field, "must not be negative")
	case n == 0:
		return def, nil
	}
	return min(n, max), nil
}
