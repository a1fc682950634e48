// Package storage opens a service's database, embedded SQLite (modernc.org/sqlite, pure Go) or
// PostgreSQL (pgx v5 through database/sql), and applies its versioned schema migrations.
//
// OpenSource picks the database: Source.URL (postgres://...) for PostgreSQL, else the SQLite
// file Source.Path. The stores write their SQL once, with '?' placeholders, and run it through
// InTx's Tx and DB.Reader, which rebind it for the DB's Dialect.
//
// SQLite (Open): a DB with two pools on one file: Write, a single connection whose
// transactions start with BEGIN IMMEDIATE (so a write never fails half-way on a lock upgrade),
// and Read, a small pool of readers that WAL lets run beside the writer. Every connection has
// journal_mode=WAL, busy_timeout and foreign_keys on.
//
// PostgreSQL (OpenPostgres): one pool (Read and Write are the same). The schema is the first
// of the URL's search_path (created when missing; default public), so that several services
// share one database, each in its own schema. InTx runs READ COMMITTED transactions, many at a
// time; a transaction that reads then writes something locks it first (Tx.Lock, a
// transaction-level advisory lock on a key such as the order id, which also covers rows not
// inserted yet; or SELECT ... FOR UPDATE), so that replicas writing the same rows concurrently
// lose no update. A transaction failing on a deadlock or a serialization failure (40P01,
// 40001) runs again, up to Config.TxAttempts times.
//
// Migrations are an ordered list of SQL scripts per dialect (Migrations); script i is schema
// version i+1 of that dialect. Migrate records each applied version in schema_migrations and
// applies each script once, in its own transaction. On PostgreSQL the run holds an advisory
// lock of the schema, so that replicas starting together migrate once. A database whose
// version is newer than the code knows is refused (ErrSchemaTooNew) rather than used with a
// schema the code does not understand.
package storage
