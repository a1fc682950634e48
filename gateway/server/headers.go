package server

import (
	"context"
	"net/http"

	"github.com/acme/shopgate/gateway/identity"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

// incomingHeader is the allow-list of client headers that become upstream metadata. key arrives
// in canonical form. Everything else is dropped: Authorization (the gateway verifies it; services
// never parse tokens), Cookie, every Grpc-Metadata-* header (clients may not set metadata), and
// so every spelling of the reserved passport keys (identity.IsReserved).
func incomingHeader(key string) (string, bool) {
	switch key {
	case "Idempotency-Key":
		return "idempotency-key", true
	case "X-Request-Id": // set by the edge: the client's when well-formed, else generated
		return "x-request-id", true
	case "Traceparent":
		return "traceparent", true
	case "Tracestate":
		return "tracestate", true
	case "Accept-Language":
		return "accept-language", true
	// Permanent HTTP headers grpc-gateway forwards by default that carry no credential, under
	// its "grpcgateway-" prefix.
	case "Accept":
		return "grpcgateway-accept", true
	case "Content-Type":
		return "grpcgateway-content-type", true
	case "User-Agent":
		return "grpcgateway-user-agent", true
	case "If-Match":
		return "grpcgateway-if-match", true
	case "If-None-Match":
		return "grpcgateway-if-none-match", true
	}
	return "", false
}

// outgoingHeader exposes no upstream header or trailer to clients: gRPC transport metadata
// (content-type, grpc-status, ...) and whatever a service sets stay inside.
func outgoingHeader(string) (string, bool) { return "", false }

// withPassport is the one place the verified identity becomes upstream metadata: exactly one
// value per key, nothing for an anonymous caller. Client-sent identity never got this far
// (incomingHeader). It runs in the upstream client interceptors (passportUnary,
// passportStream) rather than as a grpc-gateway metadata annotator, which would copy the
// request's whole metadata on every request, identified or not; appending the identity's
// pre-rendered pairs copies nothing.
func withPassport(ctx context.Context) context.Context {
	id, ok := identity.FromContext(ctx)
	if !ok {
		return ctx
	}
	if pairs := id.Passport(); len(pairs) > 0 {
		return metadata.AppendToOutgoingContext(ctx, pairs...)
	}
	return ctx
}

func passportUnary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(withPassport(ctx), method, req, reply, cc, opts...)
}

func passportStream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(withPassport(ctx), desc, cc, method, opts...)
}

// stripForwarding removes what grpc-gateway would forward on its own regardless of the header
// matcher: Authorization (as "authorization") and X-Forwarded-For/Host (from the client's
// values, RemoteAddr and Host). r must be the gateway's own shallow copy of the request.
func stripForwarding(r *http.Request) {
	h := r.Header
	delete(h, "Authorization")
	delete(h, "X-Forwarded-For")
	delete(h, "X-Forwarded-Host")
	r.Host = ""
	r.RemoteAddr = ""
}
