package server

import (
	"net/http"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/httperror"
)

// statusBadIdempotencyKey refuses a key that cannot reach the service intact.
var statusBadIdempotencyKey = status.New(codes.InvalidArgument, "Idempotency-Key: want one value of printable ASCII")

// printableASCII reports whether v is a valid gRPC metadata value as grpc-go sends it: bytes
// 0x20 to 0x7E only.
func printableASCII(v string) bool {
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// incomingHeader is the allow-list of client headers that become upstream metadata. key arrives
// in canonical form. Everything else is dropped: Authorization (the gateway verifies it; services
// never parse tokens), Cookie, every Grpc-Metadata-* header (clients may not set metadata), and
// so every spelling of the passport's x-user-* keys.
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

// incomingHeader returns the header allow-list: incomingHeader itself, or with tracing on
// the same without Traceparent and Tracestate, since the upstream call carries the gateway's
// own span context (its client span, a child of the request's server span that continued the
// client's) and must not also carry the client's.
func (s *Server) incomingHeader() func(string) (string, bool) {
	if s.tracer == nil {
		return incomingHeader
	}
	return func(key string) (string, bool) {
		if key == "Traceparent" || key == "Tracestate" {
			return "", false
		}
		return incomingHeader(key)
	}
}

// outgoingHeader exposes no upstream header or trailer to clients: gRPC transport metadata
// (content-type, grpc-status, ...) and whatever a service sets stay inside.
func outgoingHeader(string) (string, bool) { return "", false }

// forwarding is the route stage that prepares what goes upstream. It refuses (400) an
// Idempotency-Key that cannot be forwarded as gRPC metadata (sent twice, or not printable
// ASCII: grpc-gateway would silently drop it, and a retried create would charge twice). It
// removes what grpc-gateway would forward on its own regardless of the header matcher:
// Authorization (as "authorization") and X-Forwarded-For/Host (from the client's values,
// RemoteAddr and Host). The request it sees is grpc-gateway's own shallow copy
// (ServeMux.handleHandler), after every stage that reads them.
func forwarding(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := r.Header
		if keys, ok := h["Idempotency-Key"]; ok && (len(keys) != 1 || !printableASCII(keys[0])) {
			httperror.Refuse(w, r, statusBadIdempotencyKey)
			return
		}
		delete(h, "Authorization")
		delete(h, "X-Forwarded-For")
		delete(h, "X-Forwarded-Host")
		r.Host = ""
		r.RemoteAddr = ""
		next.ServeHTTP(w, r)
	})
}
