package identity

import (
	"context"
	"slices"
	"testing"

	"google.golang.org/grpc/metadata"
)

func TestPassportRenderedOnceIsTheSame(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		id   Identity
		want []string
	}{
		{"anonymous", Identity{}, nil},
		{"jwt", Identity{Subject: "alice", Roles: []string{"customer", "admin"}, Method: MethodJWT},
			[]string{MDSubject, "alice", MDRoles, "customer,admin", MDAuthMethod, "jwt"}},
		{"apikey without roles", Identity{Subject: "svc", Method: MethodAPIKey},
			[]string{MDSubject, "svc", MDRoles, "", MDAuthMethod, "apikey"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, got := range [][]string{tt.id.Passport(), tt.id.WithPassport().Passport()} {
				if !slices.Equal(got, tt.want) {
					t.Errorf("Passport() = %q, want %q", got, tt.want)
				}
			}
		})
	}
	// As metadata the passport has exactly one value per key.
	md := metadata.Pairs(tests[1].id.WithPassport().Passport()...)
	for k, v := range map[string]string{MDSubject: "alice", MDRoles: "customer,admin", MDAuthMethod: "jwt"} {
		if got := md.Get(k); len(got) != 1 || got[0] != v {
			t.Errorf("md[%q] = %q, want [%q]", k, got, v)
		}
	}
	// WithPassport renders what the identity holds when it is called, even over an older rendering.
	id := Identity{Subject: "alice", Method: MethodJWT}.WithPassport()
	id.Subject = "bob"
	if got := id.WithPassport().Passport()[1]; got != "bob" {
		t.Errorf("re-rendered subject = %q, want bob", got)
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
