package auth_test

import (
	"net/http"
	"slices"
	"testing"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/auth/authtest"
)

// TestSubjectsAreNamespaced: identity is the pair (source, subject). Two sources' users with the
// same sub are two subjects; API keys have a namespace of their own; one source may keep plain
// subjects, and then a sub that could name another source's user is refused; a source grants
// only its allowed roles; a role that is empty, holds ',' or has surrounding space is a 401; a
// sub in any Unicode passes as it is.
func TestSubjectsAreNamespaced(t *testing.T) {
	k := keys()
	dir := t.TempDir()
	jwksPath := writeFile(t, dir, "jwks.json", authtest.JWKS(authtest.JWK("ed-1", "", k.Ed.Public())))
	secretPath := writeFile(t, dir, "secret", []byte(secret))
	cfg := auth.Config{
		Sources: []auth.Source{
			{Name: "dev", Issuer: issuer, Audiences: []string{audience}, JWKSFile: jwksPath, PlainSubjects: true},
			{Name: "partner", Issuer: hmacIss, Audiences: []string{audience}, SecretFile: secretPath, AllowedRoles: []string{"customer"}},
		},
		APIKeys: []auth.APIKey{{SHA256: sha256Hex(apiKey), Subject: "alice", Roles: []string{"admin"}}},
	}
	f := newFixture(t, cfg, auth.Options{Logger: quiet, Clock: newClock(t0).Now}, nil)
	partner := func(c map[string]any) string {
		return authtest.Sign("HS256", []byte(secret), nil, with(c, "iss", hmacIss))
	}
	tests := []struct {
		name        string
		hdr         http.Header
		wantStatus  int
		wantSubject string
		wantSource  string
		wantRoles   []string
	}{
		{"plain source", bearer(edToken(claims("alice", "customer"))), 200, "alice", "dev", []string{"customer"}},
		{"same sub, other source", bearer(partner(claims("alice", "customer"))), 200, "partner|alice", "partner", []string{"customer"}},
		{"same subject, API key", http.Header{"X-Api-Key": {apiKey}}, 200, "apikey|alice", "apikey", []string{"admin"}},
		{"a role the source may not grant is dropped", bearer(partner(claims("bob", "admin", "customer"))), 200, "partner|bob", "partner", []string{"customer"}},
		{"a plain sub naming another source's user", bearer(edToken(claims("partner|alice"))), 401, "", "", nil},
		{"a role holding a comma", bearer(edToken(claims("alice", "customer, admin"))), 401, "", "", nil},
		{"a role with a leading space", bearer(edToken(claims("alice", " admin"))), 401, "", "", nil},
		{"an empty role", bearer(edToken(claims("alice", ""))), 401, "", "", nil},
		{"a Unicode sub and role", bearer(partner(claims("josé 🙂\t\"x\"", "customer"))), 200, "partner|josé 🙂\t\"x\"", "partner", []string{"customer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := f.get(t, "/required", tt.hdr)
			if r.status != tt.wantStatus {
				t.Fatalf("status %d (%s), want %d", r.status, r.message, tt.wantStatus)
			}
			if tt.wantStatus != 200 {
				return
			}
			if r.seen.Subject != tt.wantSubject || r.seen.Source != tt.wantSource || !slices.Equal(r.seen.Roles, tt.wantRoles) {
				t.Errorf("saw %+v, want subject %q of %q with roles %v", r.seen, tt.wantSubject, tt.wantSource, tt.wantRoles)
			}
		})
	}
}
