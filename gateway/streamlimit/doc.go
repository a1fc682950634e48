// Package streamlimit caps how many server streams (a :watch) one caller may hold open at
// once through this gateway process.
//
// Why: the gateway's rate limit counts the starts of requests, not the streams they leave
// open, and a :watch of a pending order lives up to its route's timeout (300s). One caller
// with a few hundred open watches once held every stream slot the upstream grants per
// connection. The gateway now sends streams over connections of their own
// (gateway/upstream), and this stage keeps one caller from filling even those.
//
// The stage (Limiter.Middleware) runs after route matching, authentication and the rate
// limit, on server-streaming routes only (policy.Route.ServerStreaming); every other request
// passes untouched. It keys the caller as the rate limiter does, but per caller rather than
// per RPC (Key):
//
//   - a caller with a token: "sub:<subject>";
//   - an API key's identity: "key:<subject>";
//   - an anonymous caller: "ip:<client address>", from gateway/clientip.
//
// A caller already holding Config.MaxPerCaller open streams is refused with 429
// RESOURCE_EXHAUSTED "too many open streams", a google.rpc.Status carrying a
// google.rpc.RetryInfo, with `Retry-After: 1` (RetryAfter). A stream holds its place from
// the moment the stage admits it until the handler returns (the stream ended, failed, or the
// client went away), whatever happens in between, a panic included.
//
// The counts are in memory, per gateway replica: behind N replicas a caller may hold up to N
// times the cap in all, and each replica's upstream connections still see at most the cap per
// caller. A map entry exists only while its caller holds a stream, so memory follows the open
// streams, not the callers ever seen. A reload keeps the counts (Options.Counts); a lowered
// cap refuses new streams until enough old ones have ended, and never cuts a stream.
//
// Metrics: gateway_streams_open (gauge: streams held open through the stage) and
// gateway_streams_refused_total (counter: streams refused over the cap).
//
// Config example (YAML section `streams`):
//
//	streams:
//	  max_per_caller: 10   # default 10 (0 means the default); negative: no cap
package streamlimit
