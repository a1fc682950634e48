package identity

import (
	"context"
	"testing"
)

func TestIsReserved(t *testing.T) {
	t.Parallel()
	tests := []struct {
		key  string
		want bool
	}{
		{"X-User-Id", true},
		{"x-user-roles", true},
		{"X_USER_ID", true},
		{"x_user-auth", true},
		{"Grpc-Metadata-X-User-Id", true},
		{"grpc-metadata-x_user_roles", true},
		{"GRPC_METADATA_X_USER_ID", true},
		{"X-User", false},
		{"X-Request-Id", false},
		{"Authorization", false},
		{"Grpc-Metadata-Idempotency-Key", false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsReserved(tt.key); got != tt.want {
			t.Errorf("IsReserved(%q) = %v, want %v", tt.key, got, tt.want)
		}
	}
}

func TestMetadataOneValuePerKey(t *testing.T) {
	t.Parallel()
	md := Metadata(Identity{Subject: "alice", Roles: []string{"customer", "admin"}, Method: MethodJWT})
	want := map[string]string{MDSubject: "alice", MDRoles: "customer,admin", MDAuthMethod: "jwt"}
	for k, v := range want {
		if got := md.Get(k); len(got) != 1 || got[0] != v {
			t.Errorf("md[%q] = %q, want [%q]", k, got, v)
		}
	}
	if md := Metadata(Identity{}); md.Len() != 0 {
		t.Errorf("anonymous passport = %v, want empty", md)
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
