// Package inventory is the inventory service: the catalogue, the stock of every item, and the
// inventory side of the order saga (reserving, committing and releasing stock).
//
// Wiring, as cmd/inventoryd and the in-process stack do it:
//
//	store, err := inventory.OpenSQLite("./data/inventory/inventory.db") // migrates; Close when done
//	svc := inventory.New(store, inventory.Options{Logger: log})       // zero Options: the defaults
//	svc.Register(grpcServer)                                           // shop.inventory.v1.InventoryService
//	svc.SetNotify(relay.Notify)                                        // after commits that wrote outbox rows
//	err = inventory.SeedDemo(ctx, store)                               // demo items when empty (dev only)
//
// Saga handlers (consumer name Consumer): HandleOrderCreated, HandleOrderConfirmed,
// HandleOrderCancelled. Each runs in one write transaction: inbox row, effect and outcome event
// together; an event seen before changes nothing. Stock never goes negative: the handler checks
// it and the table's CHECK constraints enforce it.
//
// Storage sits behind Store and Tx; SQLStore is the implementation, on an embedded SQLite file
// (OpenSQLite) or PostgreSQL (Open with a storage.Source URL; see services/storage).
// SQLStore.DB and SQLStore.Dialect expose the database for the events relay (outbox table).
package inventory
