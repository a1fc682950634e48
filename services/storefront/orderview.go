package storefront

import (
	"context"
	"slices"
	"sync"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	storefrontv1 "github.com/acme/shopgate/gen/shop/storefront/v1"
	"github.com/acme/shopgate/services/grpcserver"
)

// GetOrderView implements StorefrontServiceServer (see the package doc): the order (required)
// with its payment (asked for at once, in parallel) and the item of each line (asked for once
// the order is in), the last two within the budget of optional parts.
func (s *Service) GetOrderView(ctx context.Context, req *storefrontv1.GetOrderViewRequest) (*storefrontv1.OrderView, error) {
	if req.GetId() == "" {
		return nil, grpcserver.InvalidArgument("id", "required")
	}
	out, err := onBehalf(ctx)
	if err != nil {
		return nil, err
	}
	opt, cancel := s.budget(out)
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }() // an early return ends the payment lookup first

	var pay *storefrontv1.PaymentSummary
	var payErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		pay, payErr = s.payment(opt, req.GetId())
	}()

	order, err := s.deps.Orders.GetOrder(out, &orderv1.GetOrderRequest{Id: req.GetId()})
	if err != nil {
		return nil, s.required(ctx, "order", "order", err)
	}
	items, itemsErr := s.items(opt, order.GetItems())
	wg.Wait()

	view := &storefrontv1.OrderView{Order: order, Payment: pay}
	for _, l := range order.GetItems() {
		line := &storefrontv1.OrderViewLine{Line: l}
		if it := items[l.GetSku()]; it != nil {
			line.Name, line.CurrentPriceCents, line.Currency = it.GetName(), it.GetPriceCents(), it.GetCurrency()
		}
		view.Lines = append(view.Lines, line)
	}
	if itemsErr != nil {
		s.optional(ctx, "inventory", PartItems, itemsErr)
		view.Missing = append(view.Missing, PartItems)
	}
	if payErr != nil {
		s.optional(ctx, "payment", PartPayment, payErr)
		view.Missing = append(view.Missing, PartPayment)
		view.Payment = nil
	}
	slices.Sort(view.Missing)
	s.opts.Metrics.count("GetOrderView", view.Missing)
	return view, nil
}

// payment returns the order's latest payment (nil when it has none yet).
func (s *Service) payment(ctx context.Context, orderID string) (*storefrontv1.PaymentSummary, error) {
	res, err := s.deps.Payments.ListPayments(ctx, &paymentv1.ListPaymentsRequest{OrderId: orderID})
	if err != nil {
		return nil, err
	}
	ps := res.GetPayments() // oldest first
	if len(ps) == 0 {
		return nil, nil
	}
	p := ps[len(ps)-1]
	return &storefrontv1.PaymentSummary{Id: p.GetId(), Status: p.GetStatus(), AmountCents: p.GetAmountCents(), Currency: p.GetCurrency()}, nil
}

// items looks up the item of each distinct SKU of lines, MaxParallel at a time, and returns
// those it found by SKU, with the first error when any lookup failed.
func (s *Service) items(ctx context.Context, lines []*orderv1.OrderItem) (map[string]*inventoryv1.Item, error) {
	var skus []string
	for _, l := range lines {
		if !slices.Contains(skus, l.GetSku()) {
			skus = append(skus, l.GetSku())
		}
	}
	found := make([]*inventoryv1.Item, len(skus))
	errs := make([]error, len(skus))
	slots := make(chan struct{}, s.opts.MaxParallel)
	var wg sync.WaitGroup
	for i, sku := range skus {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				errs[i] = ctx.Err()
				return
			}
			defer func() { <-slots }()
			found[i], errs[i] = s.deps.Inventory.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: sku})
		}()
	}
	wg.Wait()
	out := make(map[string]*inventoryv1.Item, len(skus))
	var first error
	for i, sku := range skus {
		if errs[i] != nil {
			if first == nil {
				first = errs[i]
			}
			continue
		}
		out[sku] = found[i]
	}
	return out, first
}
