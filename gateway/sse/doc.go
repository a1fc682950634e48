// Package sse serves the gateway's server-streaming routes as server-sent events when the
// client asks for them (Accept: text/event-stream), and as newline-delimited JSON otherwise.
//
// It is generic: nothing here knows an order. grpc-gateway forwards every server stream the
// same way (runtime.ForwardResponseStream): it picks the outbound marshaler by the request's
// Accept header, marshals each message as {"result": <message>} and writes it with the
// marshaler's delimiter, flushing each one, and marshals a failure as {"error": <status>}.
// The stage (Stage.Middleware) runs on server-streaming routes only:
//
//   - It reads the Accept header (Accepts): SSE is chosen when text/event-stream is listed
//     with a q above 0 and no lower than application/x-ndjson's or application/json's; a
//     wildcard (*/*, text/*) never chooses it, so the default stays NDJSON. The stage then
//     rewrites the header to exactly MIME, the key under which Marshaler is registered on
//     the mux, or deletes it, so that grpc-gateway's exact-match lookup picks the right one.
//
//   - NDJSON answers carry Content-Type: application/x-ndjson (NDJSONContentType, through the
//     JSON marshaler's StreamContentType: see gateway/server).
//
//   - SSE answers carry Content-Type: text/event-stream, Cache-Control: no-cache and
//     X-Accel-Buffering: no (a buffering proxy such as nginx would hold the events back).
//     Each message is one event, flushed as it is written:
//
//     id: 1
//     data: {"id":"o-1","status":"ORDER_STATUS_PENDING",...}
//
//     The data is the message itself, not grpc-gateway's {"result": ...} envelope.
//
//   - A stream that fails after its first event ends with an error event whose data is the
//     google.rpc.Status (sanitized by the gateway's stream error handler), then closes:
//
//     event: error
//     data: {"code":14,"message":"service unavailable","details":[]}
//
//     A stream refused before its first event is an ordinary HTTP error with a
//     google.rpc.Status body (gateway/server refuseEarly), never a 200 event stream.
//
//   - While no event has been written for Config.Heartbeat (default 15s), the stage writes a
//     comment, ": keep-alive", so that proxies and load balancers do not close an idle stream
//     and a client notices a dead connection. Heartbeats begin after the first event: before
//     it, the status of the answer is not decided yet.
//
//   - When the upstream ends the stream (a :watch ends once the order reaches a final status)
//     the answer ends cleanly: the last event is the final state, and the response is
//     terminated, so an EventSource sees the end of the stream (it would reconnect; the
//     :watch of a finished order answers its final state once and ends again).
//
// Event ids are a per-stream sequence number (1, 2, ...), not a field of the message: the
// gateway frames every stream the same way and knows no message's fields. Last-Event-ID is
// not honoured: the gateway cannot resume an upstream stream at a position, and it need not:
// every :watch begins with the current state, so a client that reconnects loses nothing but
// the intermediate states it missed, which a resumable id could not bring back either (the
// service keeps no history). Streams whose messages are google.api.HttpBody are written raw.
package sse
