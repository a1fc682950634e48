// Package httpcache is the gateway's HTTP caching: entity tags and conditional GETs,
// Cache-Control per kind of route, and an opt-in response cache with invalidation by writes.
//
// Every answer of a GET route that does not stream, 200, carries (Stage.Middleware):
//
//   - ETag: a strong tag of the body bytes (ETag: xxhash64, quoted). A request whose
//     If-None-Match matches it (a list, "*", weak comparison as RFC 9110 wants for
//     If-None-Match) gets 304 Not Modified with no body, keeping ETag, Cache-Control and
//     X-Request-Id. The tag costs no copy: grpc-gateway writes a unary answer in one Write
//     after setting its headers (runtime.WithWriteContentLength), and the stage hashes that
//     one buffer before passing it on.
//   - Cache-Control: "public, max-age=N" on a public route (auth none), with N the route's
//     cache.max_age; when N is 0 (the default) "public, max-age=0, must-revalidate": shared
//     caches and browsers may keep the answer but must ask again, and the ETag makes that
//     cheap. Every other route's answer is "private, no-store", whoever called: such an answer
//     is someone's.
//
// Errors, fallbacks (an explicit status) and streams pass untouched.
//
// # The response cache
//
// A route opts in with a TTL in its policy (proto gateway.v1.policy cache.ttl, or the YAML
// `routes: {RPC: {cache: {ttl: 5s}}}`); no route of the shop's protos does, so no existing
// route serves a stale stock level. Only the 200 answers of GET routes that do not stream are
// cached. The key is the route, the path, the query parameters (sorted) and, unless the route
// is public, the caller (identity.Identity.Key: the same subject with other roles is another
// caller). Answers on a cached route carry X-Cache: HIT or MISS (the de-facto header of CDNs;
// one token a curl user reads at a glance) and, on a hit, Age in seconds. A request carrying
// Cache-Control: no-cache is not answered from the cache (its answer refreshes it), one with
// no-store neither reads nor fills it.
//
// A write through the gateway (POST, PUT, PATCH or DELETE answered 2xx) invalidates the cached
// answers of its resources (Resources): the write's path without its custom verb, and the
// collection that path belongs to (its parent). POST /v1/orders/o-1:cancel drops GET
// /v1/orders/o-1 and GET /v1/orders (every query of either); POST /v1/inventory/items/sku-1
// :reserve drops the item and the list. A change the gateway does not see (one service
// changing another's data through the broker) is bounded by the TTL only: keep TTLs short.
//
// Backends (Config.Backend):
//
//   - memory (the default): an LRU bounded by Config.MaxBytes (default 64 MiB, bodies and
//     keys) and Config.MaxEntries (default 10000). Our own small LRU rather than
//     hashicorp/golang-lru: that one bounds entries, not bytes, and the byte bound is the one
//     that protects the process. A fill that raced a write (the write happened while the
//     answer was fetched) is not stored.
//   - redis: shared by every replica (Config.Redis, gateway/redisclient: fails fast). Each
//     resource has a generation counter in Redis; an entry records the generation it was
//     fetched under, and a write increments the counters of its resources, so an
//     invalidation reaches every replica with no message to deliver. A Redis outage degrades
//     to no cache (every request goes upstream, X-Cache: MISS), never to an error.
package httpcache
