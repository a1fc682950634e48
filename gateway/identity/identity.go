// Package identity holds the verified identity of a caller (the "passport") and the one place
// that turns it into the gRPC metadata a service receives.
//
// The gateway authenticates a request once (gateway/auth), stores the result in the request's
// context, and the passport stage (gateway/passport) appends Passport to the upstream call's
// metadata. Services read the same metadata keys; they never parse a token. Identity a client
// sent itself never gets that far: the router forwards only an allow-list of client headers,
// and no x-user-* key is on it.
package identity

import (
	"context"
	"strings"
)

// The metadata keys of the passport. A service receives exactly one value of each, set by the
// gateway; a client's own values never arrive (the router's header allow-list drops them).
const (
	// MDSubject carries the caller's subject, percent-encoded (Encode).
	MDSubject = "x-user-id"
	// MDRoles carries the caller's roles, each percent-encoded, joined by ',' in the order the
	// credential gave them (a role never holds ',': gateway/auth refuses it).
	MDRoles = "x-user-roles"
	// MDAuthMethod carries how the caller authenticated: "jwt" or "apikey".
	MDAuthMethod = "x-user-auth"
)

// Method is how a caller authenticated.
type Method string

// The authentication methods.
const (
	MethodJWT    Method = "jwt"
	MethodAPIKey Method = "apikey"
)

// Identity is a verified caller. The zero value is an anonymous caller.
type Identity struct {
	// Source is the auth source that verified the caller (its name, or "apikey").
	Source string
	// Subject is the caller's stable id, unique across sources: "<source>|<sub>" unless the
	// source keeps plain subjects (gateway/auth); empty for an anonymous caller.
	Subject string
	// Roles are the caller's roles, as the credential gave them.
	Roles []string
	// Method is how the caller authenticated; empty for an anonymous caller.
	Method Method

	passport []string // the rendered passport (WithPassport), shared and never modified
}

// Anonymous reports whether id carries no verified subject.
func (id Identity) Anonymous() bool { return id.Subject == "" }

// HasAnyRole reports whether id has at least one of roles. It is true when roles is empty.
func (id Identity) HasAnyRole(roles ...string) bool {
	if len(roles) == 0 {
		return true
	}
	for _, want := range roles {
		for _, have := range id.Roles {
			if have == want {
				return true
			}
		}
	}
	return false
}

type ctxKey struct{}

// ContextKey is the context key under which NewContext stores a *Identity. A context type that
// carries the identity itself (the gateway's per-request edge state) answers Value(ContextKey())
// with a *Identity, and FromContext finds it.
func ContextKey() any { return ctxKey{} }

// NewContext returns a copy of ctx carrying id.
func NewContext(ctx context.Context, id Identity) context.Context {
	return context.WithValue(ctx, ctxKey{}, &id)
}

// FromContext returns the identity stored in ctx, and whether there was one.
func FromContext(ctx context.Context) (Identity, bool) {
	if id, ok := ctx.Value(ctxKey{}).(*Identity); ok && id != nil {
		return *id, true
	}
	return Identity{}, false
}

// Passport returns the passport of id as metadata key/value pairs (the keys in lower case, as
// metadata.AppendToOutgoingContext takes them): one value per key, nil for an anonymous caller.
// The slice may be shared: callers must not modify it.
func (id Identity) Passport() []string {
	if id.passport != nil || id.Anonymous() {
		return id.passport
	}
	return id.render()
}

// WithPassport returns id with its passport rendered once, so that every request made with it
// (a cached token, an API key) sends the passport without building it again. Fields changed
// after WithPassport are not reflected in the passport: call it last.
func (id Identity) WithPassport() Identity {
	id.passport = nil
	if !id.Anonymous() {
		id.passport = id.render()
	}
	return id
}

func (id Identity) render() []string {
	roles := make([]string, len(id.Roles))
	for i, r := range id.Roles {
		roles[i] = Encode(r)
	}
	return []string{
		MDSubject, Encode(id.Subject),
		MDRoles, strings.Join(roles, ","),
		MDAuthMethod, string(id.Method),
	}
}

// Encode percent-encodes v for a metadata value: every byte outside '!'..'~', and '%' and ',',
// becomes %XX (upper-case hex), so that any Unicode subject or role reaches the services
// intact (grpc-go refuses values that are not printable ASCII) and roles split unambiguously.
// A value with nothing to encode is returned as it is. services/passport decodes it.
func Encode(v string) string {
	n := 0
	for i := 0; i < len(v); i++ {
		if mustEncode(v[i]) {
			n++
		}
	}
	if n == 0 {
		return v
	}
	const hex = "0123456789ABCDEF"
	b := make([]byte, 0, len(v)+2*n)
	for i := 0; i < len(v); i++ {
		c := v[i]
		if mustEncode(c) {
			b = append(b, '%', hex[c>>4], hex[c&15])
			continue
		}
		b = append(b, c)
	}
	return string(b)
}

func mustEncode(c byte) bool { return c <= ' ' || c > '~' || c == '%' || c == ',' }
