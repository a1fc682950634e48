package identity

import (
	"context"
	"testing"
)

func TestKeyRenderedOnceIsTheSame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   Identity
		want string
	}{
		{"anonymous", Identity{}, ""},
		{"jwt", Identity{Source: "idp", Subject: "alice", Roles: []string{"customer", "admin"}, Method: MethodJWT},
			`["idp","alice","jwt","customer","admin"]`},
		{"apikey without roles", Identity{Source: "apikey", Subject: "svc", Method: MethodAPIKey}, `["apikey","svc","apikey"]`},
		{"unicode and separators", Identity{Source: "p", Subject: "josé \"🙂\",x", Roles: []string{"a,b"}, Method: MethodJWT},
			`["p","josé \"🙂\",x","jwt","a,b"]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, got := range []string{tt.id.Key(), tt.id.WithPassport().Key()} {
				if got != tt.want {
					t.Errorf("Key() = %q, want %q", got, tt.want)
				}
			}
		})
	}
}

func TestKeyTellsIdentitiesApart(t *testing.T) {
	t.Parallel()
	ids := []Identity{
		{Source: "a", Subject: "b", Method: MethodJWT, Roles: []string{"c", "d"}},
		{Source: "a", Subject: "b", Method: MethodJWT, Roles: []string{"c,d"}},
		{Source: "a", Subject: "b", Method: MethodJWT, Roles: []string{"d", "c"}},
		{Source: "a", Subject: "b", Method: MethodAPIKey, Roles: []string{"c", "d"}},
		{Source: "a|b", Subject: "", Method: MethodJWT},
		{Source: "a", Subject: "b|", Method: MethodJWT},
	}
	seen := map[string]int{}
	for i, id := range ids {
		k := id.Key()
		if j, ok := seen[k]; ok && k != "" {
			t.Errorf("identities %d and %d share the key %q", j, i, k)
		}
		seen[k] = i
	}
	// WithPassport renders what the identity holds when it is called, even over an older rendering.
	id := Identity{Subject: "alice", Method: MethodJWT}.WithPassport()
	id.Subject = "bob"
	if got := id.WithPassport().Key(); got != `["","bob","jwt"]` {
		t.Errorf("re-rendered key = %q", got)
	}
}

func TestContextRoundTrip(t *testing.T) {
	t.Parallel()
	if _, ok := FromContext(context.Background()); ok {
		t.Fatal("empty context has an identity")
	}
	in := Identity{Subject: "bob", Roles: []string{"admin"}, Method: MethodAPIKey}
	out, ok := FromContext(NewContext(context.Background(), in))
	if !ok || out.Subject != "bob" || !out.HasAnyRole("admin") || out.HasAnyRole("root") {
		t.Fatalf("round trip = %+v, %v", out, ok)
	}
	if !out.HasAnyRole() {
		t.Error("HasAnyRole() with no roles required = false, want true")
	}
}
