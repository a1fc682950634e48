// Package storage opens a service's embedded SQLite database (modernc.org/sqlite, pure Go) and
// applies its versioned schema migrations.
//
// Open returns a DB with two pools on one file: Write, a single connection whose transactions
// start with BEGIN IMMEDIATE (so a write never fails half-way on a lock upgrade), and Read, a
// small pool of readers that WAL lets run beside the writer. Every connection has
// journal_mode=WAL, busy_timeout and foreign_keys on.
//
// Migrations are an ordered list of SQL scripts; script i is schema version i+1. Migrate records
// each applied version in schema_migrations and applies each script once, in its own
// transaction. A database whose version is newer than the code knows is refused
// (ErrSchemaTooNew) rather than used with a schema the code does not understand.
package storage
