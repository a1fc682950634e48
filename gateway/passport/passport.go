// Package passport is the gateway's passport stage: the gRPC client interceptors that attach the
// verified identity of the caller (gateway/identity, set by the auth stage) to every upstream
// call as metadata, exactly one value per key (identity.MDSubject, MDRoles, MDAuthMethod), and
// nothing for an anonymous caller. Services read those keys (services/passport); they never
// parse a token.
//
// Identity a client sent itself never reaches this stage: the router's header allow-list
// (gateway/server, headers.go) drops every client header but a few harmless ones, Grpc-Metadata-*
// included. The stage appends the identity's pre-rendered pairs (identity.Identity.Passport),
// which copies no metadata; a grpc-gateway metadata annotator would copy the request's whole
// metadata on every request.
package passport

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/acme/shopgate/gateway/identity"
)

// attach returns ctx with the verified identity's passport appended to its outgoing metadata.
func attach(ctx context.Context) context.Context {
	id, ok := identity.FromContext(ctx)
	if !ok {
		return ctx
	}
	if pairs := id.Passport(); len(pairs) > 0 {
		return metadata.AppendToOutgoingContext(ctx, pairs...)
	}
	return ctx
}

// Unary is the passport stage for unary calls.
func Unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(attach(ctx), method, req, reply, cc, opts...)
}

// Stream is the passport stage for streaming calls.
func Stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	return streamer(attach(ctx), desc, cc, method, opts...)
}
