// Package passport is the services' side of the gateway's passport: who the caller of an RPC
// is. Services use it for ownership and role checks and never trust a request field for who
// the caller is.
//
// The gateway verifies each request's credential once and gives every upstream call a
// passport: a short-lived token it signed (compact JWS, EdDSA), under the metadata key
// MDPassport, naming the caller (sub, src, roles, auth) for the one service called (aud). A
// Verifier, installed as a server interceptor (services/grpcserver), checks it before the
// handler runs and puts the Caller in the context (FromContext):
//
//   - no passport: an anonymous call (Require answers UNAUTHENTICATED);
//   - a passport that is not signed by a key of the trusted JWK Set, not EdDSA, not issued by
//     Issuer, not for this service (aud), expired (beyond Leeway) or sent twice: the call is
//     refused with UNAUTHENTICATED before the handler runs.
//
// Nothing else counts: x-user-* metadata (the unsigned passport of earlier versions) is
// ignored, so a client that reaches a service's port directly is anonymous.
//
// Verifying an Ed25519 signature costs tens of microseconds; the gateway signs a caller's
// passport for a service once for half its life, so the Verifier keeps what it verified, keyed
// by the token, until the token expires (bounded by Options.CacheSize): a call with a known
// passport costs a map lookup.
package passport

import (
	"context"
	"slices"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The passport's names, as the gateway writes them (gateway/passport).
const (
	// MDPassport is the metadata key of the passport.
	MDPassport = "x-passport"
	// Issuer is the passport's iss.
	Issuer = "shopgate-gateway"
	// Algorithm is the only JWS alg accepted.
	Algorithm = "EdDSA"
)

// RoleAdmin is the role that sees and manages every customer's resources.
const RoleAdmin = "admin"

// Caller is the verified caller of an RPC. The zero value is an anonymous caller.
type Caller struct {
	// Subject is the caller's id; empty when anonymous.
	Subject string
	// Roles are the caller's roles, in the order the credential gave them.
	Roles []string
	// Auth is how the caller authenticated ("jwt", "apikey"); empty when anonymous.
	Auth string
	// Source is the gateway's auth source that verified the caller; empty when anonymous.
	Source string
}

// HasRole reports whether the caller has role (exactly: "administrator" is not "admin").
func (c Caller) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// IsAdmin reports whether the caller has RoleAdmin.
func (c Caller) IsAdmin() bool { return c.HasRole(RoleAdmin) }

// CanSee reports whether the caller may see a resource owned by owner: its owner or an admin.
func (c Caller) CanSee(owner string) bool {
	return c.Subject != "" && (c.Subject == owner || c.IsAdmin())
}

type ctxKey struct{}

// NewContext returns ctx carrying c as the verified caller (the Verifier's interceptors do
// this; tests of code below them may too).
func NewContext(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, ctxKey{}, &c)
}

// FromContext returns the caller of the incoming RPC in ctx, verified from its passport, and
// whether there is one.
func FromContext(ctx context.Context) (Caller, bool) {
	if c, ok := ctx.Value(ctxKey{}).(*Caller); ok && c != nil && c.Subject != "" {
		return *c, true
	}
	return Caller{}, false
}

// Require returns the caller of the incoming RPC, or an UNAUTHENTICATED status error when
// there is none.
func Require(ctx context.Context) (Caller, error) {
	c, ok := FromContext(ctx)
	if !ok {
		return Caller{}, status.Error(codes.Unauthenticated, "authentication required")
	}
	return c, nil
}

// RequireRole returns the caller when it has role: UNAUTHENTICATED without a caller,
// PERMISSION_DENIED without the role.
func RequireRole(ctx context.Context, role string) (Caller, error) {
	c, err := Require(ctx)
	if err != nil {
		return c, err
	}
	if !c.HasRole(role) {
		return c, status.Errorf(codes.PermissionDenied, "role %q required", role)
	}
	return c, nil
}
