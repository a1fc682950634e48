// Package passport reads the caller that the gateway verified and attaches to every upstream
// call as gRPC metadata. Services use it for ownership and role checks and never trust a request
// field for who the caller is.
//
// The passport is plain metadata: it is not signed and nothing here verifies it, so a service
// trusts whoever can reach it, which must be the gateway only. The three keys below are the
// gateway's passport (gateway/identity renders them; the end-to-end tests of cmd/shop check
// that both sides agree). Subject and roles arrive percent-encoded (every byte outside '!'..'~',
// and '%' and ',', as %XX), so that any Unicode text reaches the service intact and the role
// list splits on ',' unambiguously; FromContext decodes them. Each key counts only when it
// arrives exactly once: a subject sent twice, or one that does not decode, is treated as no
// caller at all, and roles or an auth method sent twice as none, so a spoofed value that
// slipped in beside the verified one cannot win.
package passport

import (
	"context"
	"net/url"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The metadata keys of the passport.
const (
	// MDSubject carries the caller's subject, percent-encoded.
	MDSubject = "x-user-id"
	// MDRoles carries the caller's roles, each percent-encoded, joined by ','.
	MDRoles = "x-user-roles"
	// MDAuthMethod carries how the caller authenticated: "jwt" or "apikey".
	MDAuthMethod = "x-user-auth"
)

// RoleAdmin is the role that sees and manages every customer's resources.
const RoleAdmin = "admin"

// Caller is the verified caller of an RPC. The zero value is an anonymous caller.
type Caller struct {
	// Subject is the caller's id; empty when anonymous.
	Subject string
	// Roles are the caller's roles, decoded, in the order the credential gave them.
	Roles []string
	// Auth is how the caller authenticated ("jwt", "apikey"); empty when anonymous.
	Auth string
}

// HasRole reports whether the caller has role (exactly: "administrator" is not "admin").
func (c Caller) HasRole(role string) bool { return slices.Contains(c.Roles, role) }

// IsAdmin reports whether the caller has RoleAdmin.
func (c Caller) IsAdmin() bool { return c.HasRole(RoleAdmin) }

// CanSee reports whether the caller may see a resource owned by owner: its owner or an admin.
func (c Caller) CanSee(owner string) bool {
	return c.Subject != "" && (c.Subject == owner || c.IsAdmin())
}

// FromContext returns the caller of the incoming RPC in ctx, and whether there is one (a
// subject present exactly once).
func FromContext(ctx context.Context) (Caller, bool) {
	sub, err := url.PathUnescape(one(ctx, MDSubject))
	if sub == "" || err != nil {
		return Caller{}, false
	}
	return Caller{Subject: sub, Roles: roles(one(ctx, MDRoles)), Auth: one(ctx, MDAuthMethod)}, true
}

// roles decodes the role list; a role that does not decode is dropped.
func roles(v string) []string {
	if v == "" {
		return nil
	}
	parts := strings.Split(v, ",")
	out := parts[:0]
	for _, p := range parts {
		if r, err := url.PathUnescape(p); err == nil && r != "" {
			out = append(out, r)
		}
	}
	return out
}

// one returns the single value of key in the incoming metadata, or "" when it is missing or
// repeated. It reads the one key without copying the whole metadata.
func one(ctx context.Context, key string) string {
	v := metadata.ValueFromIncomingContext(ctx, key)
	if len(v) != 1 {
		return ""
	}
	return v[0]
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
