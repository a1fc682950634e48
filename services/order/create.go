package order

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"math"
	"strconv"
	"sync"

	eventsv1 "github.com/acme/shopgate/gen/shop/events/v1"
	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/acme/shopgate/services/events"
	"github.com/acme/shopgate/services/grpcserver"
	"github.com/acme/shopgate/services/passport"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Metadata keys CreateOrder (and, for the trace context, CancelOrder) reads.
const (
	// MDIdempotencyKey carries the client's Idempotency-Key header.
	MDIdempotencyKey = "idempotency-key"
	// MDTraceParent and MDTraceState carry the W3C trace context, copied into OrderCreated (and
	// into the OrderCancelled of a customer's cancel), then by every service into the events
	// that follow from it.
	MDTraceParent = events.MDTraceParent
	MDTraceState  = events.MDTraceState
)

// ReasonIdempotencyKeyReused is the ErrorInfo reason of an Idempotency-Key sent again with
// another request; the gateway maps it to HTTP 422.
const ReasonIdempotencyKeyReused = "IDEMPOTENCY_KEY_REUSED"

// ErrorDomain is the ErrorInfo domain of the shop's errors.
const ErrorDomain = "shop.acme"

var errKeyReused = errors.New("idempotency key reused")

// CreateOrder implements OrderServiceServer: prices the lines through inventory, then writes
// the PENDING order, its OrderCreated event and the Idempotency-Key (if any) in one transaction.
func (s *Service) CreateOrder(ctx context.Context, req *orderv1.CreateOrderRequest) (*orderv1.Order, error) {
	caller, err := passport.Require(ctx)
	if err != nil {
		return nil, err
	}
	md, _ := metadata.FromIncomingContext(ctx)
	key, err := idempotencyKey(md)
	if err != nil {
		return nil, err
	}
	if err := validateCreate(req); err != nil {
		return nil, err
	}
	method := req.GetPaymentMethod()
	if method == "" {
		method = DefaultPaymentMethod
	}
	var hash []byte
	if key != "" {
		hash = requestHash(req, method)
		// Fast path: a retry does not need inventory.
		if o, err := s.replay(ctx, caller.Subject, key, hash); o != nil || err != nil {
			return o, err
		}
	}
	o, err := s.price(ctx, req)
	if err != nil {
		return nil, err
	}
	now := s.now()
	o.Id = events.NewID()
	o.CustomerId = caller.Subject
	o.Status = orderv1.OrderStatus_ORDER_STATUS_PENDING
	o.PaymentMethod = method
	o.CreateTime = timestamppb.New(now)
	o.UpdateTime = o.CreateTime
	env, err := events.NewEnvelope(Source, o.Id, orderCreated(o), now, events.RequestTraceContext(ctx, md))
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "create order", err)
	}
	var existing string
	err = s.store.Update(ctx, func(tx Tx) error {
		existing = ""
		if key != "" {
			if err := tx.PurgeIdempotency(ctx, now); err != nil {
				return err
			}
			rec, err := tx.Idempotency(ctx, caller.Subject, key)
			switch {
			case err == nil && !bytes.Equal(rec.RequestHash, hash):
				return errKeyReused
			case err == nil:
				existing = rec.OrderID
				return nil
			case !errors.Is(err, ErrNotFound):
				return err
			}
		}
		if err := tx.Insert(ctx, o); err != nil {
			return err
		}
		if key != "" {
			if err := tx.PutIdempotency(ctx, IdempotencyRecord{
				CustomerID: caller.Subject, Key: key, RequestHash: hash, OrderID: o.Id, ExpiresAt: now.Add(s.ttl),
			}); err != nil {
				return err
			}
		}
		return tx.Append(ctx, env)
	})
	if errors.Is(err, errKeyReused) {
		return nil, keyReusedError()
	}
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "create order", err)
	}
	if existing != "" {
		return s.current(ctx, existing)
	}
	s.committed(o.Id, true)
	return o, nil
}

// replay returns the order of a known, unexpired key used with the same request; an error if
// the key was used with another request; nil, nil if the key is new.
func (s *Service) replay(ctx context.Context, customer, key string, hash []byte) (*orderv1.Order, error) {
	rec, err := s.store.Idempotency(ctx, customer, key)
	if errors.Is(err, ErrNotFound) || (err == nil && !rec.ExpiresAt.After(s.now())) {
		return nil, nil
	}
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "read idempotency key", err)
	}
	if !bytes.Equal(rec.RequestHash, hash) {
		return nil, keyReusedError()
	}
	return s.current(ctx, rec.OrderID)
}

// current returns the order as it stands now.
func (s *Service) current(ctx context.Context, id string) (*orderv1.Order, error) {
	o, err := s.store.Get(ctx, id)
	if err != nil {
		return nil, grpcserver.Internal(ctx, s.log, "read order of idempotency key", err)
	}
	return o, nil
}

func keyReusedError() error {
	st := status.New(codes.FailedPrecondition, "idempotency key already used with a different request")
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: ReasonIdempotencyKeyReused, Domain: ErrorDomain}); err == nil {
		st = d
	}
	return st.Err()
}

// idempotencyKey returns the request's Idempotency-Key ("" when none).
func idempotencyKey(md metadata.MD) (string, error) {
	v := md.Get(MDIdempotencyKey)
	switch {
	case len(v) == 0:
		return "", nil
	case len(v) > 1:
		return "", grpcserver.InvalidArgument("Idempotency-Key", "must be sent once")
	case !validKey(v[0]):
		return "", grpcserver.InvalidArgument("Idempotency-Key", "must be 1 to 255 printable ASCII characters")
	}
	return v[0], nil
}

// requestHash identifies the request an Idempotency-Key was first used with.
func requestHash(req *orderv1.CreateOrderRequest, method string) []byte {
	norm := &orderv1.CreateOrderRequest{Items: req.GetItems(), PaymentMethod: method}
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(norm)
	sum := sha256.Sum256(b)
	return sum[:]
}

// pricingConcurrency bounds the inventory calls one CreateOrder makes at once.
const pricingConcurrency = 8

// price asks inventory for every line's price and currency (up to pricingConcurrency calls at
// once) and returns the order's items, total and currency. The first failing line, in line
// order, decides the error.
func (s *Service) price(ctx context.Context, req *orderv1.CreateOrderRequest) (*orderv1.Order, error) {
	lines := req.GetItems()
	items := make([]*inventoryv1.Item, len(lines))
	errs := make([]error, len(lines))
	if len(lines) == 1 {
		items[0], errs[0] = s.inventory.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: lines[0].GetSku()})
	} else {
		sem := make(chan struct{}, pricingConcurrency)
		var wg sync.WaitGroup
		for i, l := range lines {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				items[i], errs[i] = s.inventory.GetItem(ctx, &inventoryv1.GetItemRequest{Sku: l.GetSku()})
			})
		}
		wg.Wait()
	}
	o := &orderv1.Order{Items: make([]*orderv1.OrderItem, 0, len(lines))}
	for i, l := range lines {
		field := "items[" + strconv.Itoa(i) + "].sku"
		if errs[i] != nil {
			return nil, s.inventoryError(ctx, field, errs[i])
		}
		it := items[i]
		switch {
		case i == 0:
			o.Currency = it.GetCurrency()
		case it.GetCurrency() != o.Currency:
			return nil, grpcserver.InvalidArgument(field, "currency "+it.GetCurrency()+" differs from the order's "+o.Currency)
		}
		q := int64(l.GetQuantity())
		if it.GetPriceCents() < 0 || it.GetPriceCents() > (math.MaxInt64-o.TotalCents)/q {
			return nil, grpcserver.InvalidArgument(field, "order total out of range")
		}
		o.TotalCents += q * it.GetPriceCents()
		o.Items = append(o.Items, &orderv1.OrderItem{Sku: l.GetSku(), Quantity: l.GetQuantity(), UnitPriceCents: it.GetPriceCents()})
	}
	return o, nil
}

// inventoryError maps an inventory failure: an unknown SKU is the client's mistake, an
// unreachable inventory UNAVAILABLE, a deadline DEADLINE_EXCEEDED, the rest INTERNAL.
func (s *Service) inventoryError(ctx context.Context, field string, err error) error {
	switch status.Code(err) {
	case codes.NotFound, codes.InvalidArgument:
		return grpcserver.InvalidArgument(field, "unknown item")
	case codes.Unavailable, codes.ResourceExhausted, codes.Aborted:
		s.log.WarnContext(ctx, "inventory unavailable", "err", err)
		return status.Error(codes.Unavailable, "inventory unavailable, try again")
	case codes.DeadlineExceeded:
		return status.Error(codes.DeadlineExceeded, "inventory did not answer in time")
	case codes.Canceled:
		if ctx.Err() != nil {
			return status.Error(codes.Canceled, "request cancelled")
		}
		return status.Error(codes.Unavailable, "inventory unavailable, try again")
	}
	return grpcserver.Internal(ctx, s.log, "price order", err)
}

func orderCreated(o *orderv1.Order) *eventsv1.OrderCreated {
	ev := &eventsv1.OrderCreated{
		OrderId: o.GetId(), CustomerId: o.GetCustomerId(), TotalCents: o.GetTotalCents(),
		Currency: o.GetCurrency(), PaymentMethod: o.GetPaymentMethod(),
		Lines: make([]*eventsv1.Line, 0, len(o.GetItems())),
	}
	for _, it := range o.GetItems() {
		ev.Lines = append(ev.Lines, &eventsv1.Line{Sku: it.GetSku(), Quantity: it.GetQuantity(), UnitPriceCents: it.GetUnitPriceCents()})
	}
	return ev
}
