// Package payment is the payment service: it charges orders (simulated, deterministic) as the
// order saga asks, lets customers read their payments and admins refund them.
//
// Wiring, as cmd/paymentd and the in-process stack do it:
//
//	store, err := payment.OpenSQLite("./data/payment/payment.db") // migrates; Close when done
//	svc := payment.New(store, payment.Options{Logger: log})       // zero Options: the defaults
//	svc.Register(grpcServer)                                       // shop.payment.v1.PaymentService
//	svc.SetNotify(relay.Notify)                                    // after commits that wrote outbox rows
//
// Payments are created only by HandleOrderCreated: payment method "pm_card_ok" (or empty) is
// CAPTURED (PaymentCaptured), "pm_card_declined" is DECLINED "card declined", anything else
// DECLINED "unsupported payment method" (PaymentDeclined). HandleOrderCancelled refunds a
// captured payment (PaymentRefunded), or leaves a tombstone when the order was not charged yet so
// that a late OrderCreated charges nothing. Both use consumer name Consumer; each runs in one
// write transaction with its inbox row and outcome event.
//
// Storage sits behind Store and Tx; SQLStore is the implementation, on an embedded SQLite file
// (OpenSQLite) or PostgreSQL (Open with a storage.Source URL; see services/storage).
// SQLStore.DB and SQLStore.Dialect expose the database for the events relay (outbox table).
package payment
