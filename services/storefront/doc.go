// Package storefront is the shop's front server (BFF), shop.storefront.v1.StorefrontService:
// each RPC answers one screen of an app, composed from the order, inventory and payment
// services over gRPC. It owns no data and consumes no events.
//
// Delegation: the storefront calls the other services on the caller's behalf with the
// caller's own passport (the x-passport metadata it received, passed on unchanged, with
// x-request-id). The gateway signs that passport for the storefront with the other services
// in its aud too (the storefront proto's gateway.v1 delegates), so each service checks it as
// it would a direct call: the storefront sees exactly what the caller may see. A call without
// a passport is refused with UNAUTHENTICATED before any dependency is asked.
//
// Composition and partial answers:
//
//   - GetOrderView asks for the order (required) and, at once, its payments; once the order
//     is in, the item of each distinct SKU (Options.MaxParallel lookups at a time). Without
//     the order there is no view: the order service's NOT_FOUND (an order the caller may not
//     see) stays NOT_FOUND, its slowness DEADLINE_EXCEEDED, anything else UNAVAILABLE. The
//     items and the payment are optional: when they fail or are late the view is answered
//     without them and its `missing` field names them ("items", "payment").
//   - GetHome asks for the caller's recent orders and the catalogue's first page in parallel;
//     either may be missing ("orders", "catalogue"); only both missing is an error.
//
// Optional parts share one budget per call: Options.DependencyTimeout (default 800ms) from
// the call's start, cut to the call's own deadline minus Options.Reserve (default 50ms) so
// that a partial answer still reaches the caller in time. Every goroutine a call starts ends
// before the call returns. Errors of dependencies are logged and mapped here, once: no
// dependency's error text reaches the caller.
//
// Metrics (NewMetrics): storefront_partial_total{rpc, part}, the answers sent without a part.
package storefront
