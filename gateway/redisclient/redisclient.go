// Package redisclient builds the go-redis client the gateway's Redis backends share (the rate
// limiter's and the abuse detector's): one that fails fast. A stage asks Redis on the request's
// path, so a dead or slow Redis must cost a request at most one Timeout: no retries, one dial
// attempt, every dial, read, write and pool wait bounded, and the call's context honoured.
// Connections are made lazily: building a client makes no round trip, so the gateway starts
// while Redis is down.
package redisclient

import (
	"time"

	"github.com/acme/shopgate/internal/tlsfiles"

	"github.com/redis/go-redis/v9"
)

// Options are where Redis is and how long one call may take.
type Options struct {
	// Addr is host:port. Required.
	Addr string
	// Username and Password for Redis ACLs. Default: none.
	Username, Password string
	// DB is the database number. Default: 0.
	DB int
	// Timeout bounds the dial, each read and write, and the wait for a pooled connection.
	// Required (positive).
	Timeout time.Duration
	// PoolSize is the number of connections. Default: go-redis's (10 per GOMAXPROCS).
	PoolSize int
	// TLS connects over TLS with these files, re-read when they change, for new connections
	// (internal/tlsfiles); the server name verified defaults to Addr's host. Default: none
	// (plaintext).
	TLS tlsfiles.ClientFiles
}

// New returns a client of o that fails fast.
func New(o Options) *redis.Client {
	return redis.NewClient(&redis.Options{
		Addr:                  o.Addr,
		Username:              o.Username,
		Password:              o.Password,
		DB:                    o.DB,
		DialTimeout:           o.Timeout,
		ReadTimeout:           o.Timeout,
		WriteTimeout:          o.Timeout,
		PoolTimeout:           o.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1, // a retry would double what a dead Redis costs a request
		DialerRetries:         1,  // go-redis's default, 5 dials 100ms apart, would hold a request 0.5s
		PoolSize:              o.PoolSize,
		DisableIdentity:       true, // no CLIENT SETINFO round trip on every new connection
		TLSConfig:             tlsConfig(o),
	})
}
