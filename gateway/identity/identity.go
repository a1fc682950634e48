// Package identity holds the verified identity of a caller: what the gateway authenticated,
// and what its passport (gateway/passport) tells the services.
//
// The gateway authenticates a request once (gateway/auth), stores the result in the request's
// context, and the passport stage signs it into the upstream call's passport. Identity a client
// sent itself never gets that far: the router forwards only an allow-list of client headers,
// and the services trust nothing but a passport signed by the gateway.
package identity

import (
	"context"
	"encoding/json"
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
	// Claims are the top-level claims of the caller's verified token other than the registered
	// ones (iss, sub, aud, exp, nbf, iat, jti) and the roles: a string's value, or a number's
	// or boolean's JSON text. Objects, arrays and null are left out. Nil for an API key. They
	// choose a traffic pool (gateway/traffic) and are not part of the passport (Key).
	Claims map[string]string

	key string // the rendered Key (WithPassport)
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

// Key returns a string that names everything the passport says of id (source, subject, roles
// in order, method), unambiguously whatever Unicode they hold: two identities with the same
// Key get the same passport. The passport stage keys its cache of signed passports by it. It
// is "" for an anonymous caller.
func (id Identity) Key() string {
	if id.key != "" || id.Anonymous() {
		return id.key
	}
	return id.render()
}

// WithPassport returns id with its Key rendered once, so that every request made with it (a
// cached token, an API key) finds its signed passport without rendering anything. Fields
// changed after WithPassport are not reflected in the Key: call it last.
func (id Identity) WithPassport() Identity {
	id.key = ""
	if !id.Anonymous() {
		id.key = id.render()
	}
	return id
}

// render is the JSON array [source, subject, method, roles...]: JSON strings are unambiguous.
func (id Identity) render() string {
	parts := make([]string, 0, 3+len(id.Roles))
	parts = append(parts, id.Source, id.Subject, string(id.Method))
	parts = append(parts, id.Roles...)
	b, _ := json.Marshal(parts) // []string always marshals
	return string(b)
}
