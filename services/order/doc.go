// Package order is the order service: it takes orders (PENDING at once), follows them through
// the saga to CONFIRMED or CANCELLED, and lets their customers read, cancel and watch them.
//
// Wiring, as cmd/orderd and the in-process stack do it:
//
//	store, err := order.OpenSQLite("./data/order/order.db")      // migrates; Close when done
//	svc := order.New(store, inventoryClient, order.Options{...})  // zero Options: the defaults
//	defer svc.Close()                                              // ends every WatchOrder stream
//	svc.Register(grpcServer)                                       // shop.order.v1.OrderService
//	svc.SetNotify(relay.Notify)                                    // after commits that wrote outbox rows
//
// Prices and currency come from the inventory service (the InventoryServiceClient given to
// New); the customer is the caller from the gateway's passport (services/passport).
// CreateOrder honors the "idempotency-key" metadata, scoped per customer and kept
// IdempotencyTTL (24h): the order, its OrderCreated event and the key are written in one
// transaction.
//
// Saga handlers (consumer name Consumer): HandleStockReserved, HandleStockRejected,
// HandlePaymentCaptured, HandlePaymentDeclined. Stock reserved and payment captured make the
// order CONFIRMED (OrderConfirmed); the first failure makes it CANCELLED with a reason
// (OrderCancelled). An outcome for a final order changes nothing.
//
// Storage sits behind Store and Tx; SQLStore is the implementation, on an embedded SQLite file
// (OpenSQLite) or PostgreSQL (Open with a storage.Source URL; see services/storage).
// SQLStore.DB and SQLStore.Dialect expose the database for the events relay (outbox table).
package order
