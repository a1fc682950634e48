// Package connlimit bounds the client connections of the gateway's HTTP server and closes idle
// keep-alive connections sooner while the bound is near.
//
// The cap (server.max_connections, default DefaultMax): the wrapped listener accepts a
// connection beyond it and closes it at once, and counts it in
// gateway_connections_refused_total. It does not stop accepting, as
// golang.org/x/net/netutil.LimitListener does: connections left in the kernel's accept queue
// look alive to the client, which waits on them until its own timeout and cannot tell the
// gateway from a dead one, and the queue fills with connections no one will serve. Closed at
// once, the client fails fast and retries elsewhere, as with Envoy's connection limits (its
// overload manager's global_downstream_max_connections closes connections over the limit) and
// nginx, which drops what it cannot take once worker_connections are spent.
//
// Under pressure (PressurePercent of the cap, 80% by default, or more connections open), an
// idle keep-alive connection is closed after PressureIdleTimeout (5s by default) instead of the
// server's idle timeout (server.idle_timeout, 120s by default): a connection that goes idle
// under pressure gets the shorter idle deadline, and when pressure begins, the connections
// already idle get it too, counted from when they went idle (those idle longer are closed at
// once). The server's ConnState hook says when a connection goes idle (its response is done);
// the first byte of the next request makes it busy again. The deadline is the connection's own
// read deadline, which net/http's serving goroutine already waits on: the package starts no
// goroutine and no timer. A request arriving on an idle connection just as it is closed meets
// the same race as at the end of any idle timeout; HTTP clients retry such a request on a new
// connection when it is idempotent.
//
// The open connections are the gauge gateway_connections_open.
package connlimit
