// Package abuse blocks client addresses that fail authentication too often (API.md, "Identity
// and abuse"): an address with more than 30 failed authentications (401 answers) within one
// minute is refused with 429 and Retry-After on every route for 5 minutes.
//
// The stage (Detector.Middleware) is an edge stage: it must see the final status of every
// answer and refuse before routing. Before it calls the rest of the stack it looks the client
// address up (gateway/clientip: X-Forwarded-For only through client_ip.trusted_proxies); a
// blocked address gets
//
//	429 RESOURCE_EXHAUSTED "too many failed authentications from this address"
//	Retry-After: <whole seconds until the block ends, rounded up>
//
// as a google.rpc.Status carrying a google.rpc.RetryInfo (gateway/httperror), and the request
// goes no further. After the stack answered, a 401 counts one failure for the address. The
// failure that makes more than max_failures within the sliding window blocks the address for
// block_for; that failure's replica logs one Warn line ("client address blocked for failed
// authentications", with addr, failures, until) and counts gateway_abuse_blocks_total. While
// blocked, an address's failures are not counted; once the block ends it starts from zero.
// Requests whose address is unknown (not an IP) are not counted.
//
// # Backends
//
// Both implement one Store interface and count exactly (the times of the last max_failures+1
// failures, not an estimate):
//
//   - Memory: in-process, at most max_keys addresses (least recently used forgotten), no
//     goroutine. A request from an address without failures costs one map lookup under one of
//     32 locks.
//   - Redis: a sorted set of failure times and a block key with a TTL per address, both in one
//     hash slot ("<key_prefix>{<addr>}:f", "<key_prefix>{<addr>}:b"); a failure is one Lua
//     script, so replicas sharing one Redis share one count and each block is created (and
//     logged) once. To keep Redis off every request, each replica caches Redis's answer per
//     address for redis.sync_interval (1s): a block made or lifted by another replica applies
//     here within that delay; a block made by this replica applies at once. A request costs two
//     map lookups and at most one GET per address and interval; a 401 costs one EVALSHA.
//
// A Redis failure never blocks anyone: the detector fails open to per-replica counting in its
// in-memory store (so detection goes on, each replica alone, and a block made then lasts its
// whole block_for on that replica), skips Redis for
// redis.probe_interval after a failure (one request probes it per interval), logs the outage
// and the recovery once each, and counts gateway_abuse_backend_errors_total.
//
// # Operator
//
// Detector.List and Detector.Lift, and Detector.AdminHandler to mount (GET lists the blocks as
// JSON, DELETE ?addr=<ip> lifts one: 204, 404 when not blocked, 400 when not an IP).
//
// # Reload
//
// Thresholds are passed to the store at each failure, so a reloaded detector applies them at
// once. To keep in-memory failures and blocks across a reload, build the new detector with
// Options.Local = old.Local(); the Memory is not owned by the detector. Redis state lives in
// Redis. Close the old detector's Redis client (Close) after the swap.
//
// # Config example (YAML section `abuse`)
//
//	abuse:
//	  disabled: false           # default false: the detector is on
//	  max_failures: 30          # failures allowed within the window; one more blocks; default 30
//	  window: 1m                # sliding window; default 1m
//	  block_for: 5m             # default 5m
//	  backend: redis            # "memory" (default) or "redis"; follows rate_limiting.backend
//	  max_keys: 100000          # addresses held in memory; default 100000
//	  redis:
//	    addr: 127.0.0.1:6379    # default
//	    db: 0                   # default
//	    key_prefix: "shopgate:abuse:"  # default; must not contain { or }
//	    timeout: 100ms          # dial/read/write and per call; default 100ms
//	    probe_interval: 1s      # default 1s
//	    sync_interval: 1s       # how stale a replica's view of other replicas' blocks may be; default 1s
//	    pool_size: 0            # default: go-redis's
//
// The Redis password is Options.RedisPassword, never the YAML.
//
// # Metrics (when Options.Registerer is set)
//
//	gateway_abuse_failures_total               failed authentications counted
//	gateway_abuse_blocks_total                 blocks made by this replica
//	gateway_abuse_refused_total                requests refused with 429 for a block
//	gateway_abuse_backend_errors_total{backend}
//	gateway_abuse_backend_degraded{backend}    1 while Redis is unreachable
package abuse
