package passport_test

import (
	"context"
	"testing"

	"github.com/acme/shopgate/services/passport"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

func TestFromContext(t *testing.T) {
	tests := []struct {
		name      string
		md        metadata.MD
		wantOK    bool
		wantSub   string
		wantAdmin bool
	}{
		{name: "no metadata", md: nil},
		{name: "customer", md: metadata.Pairs("x-user-id", "alice", "x-user-roles", "customer", "x-user-auth", "jwt"), wantOK: true, wantSub: "alice"},
		{name: "admin among roles", md: metadata.Pairs("x-user-id", "root", "x-user-roles", "customer,admin", "x-user-auth", "apikey"), wantOK: true, wantSub: "root", wantAdmin: true},
		{name: "one role that only looks like two", md: metadata.Pairs("x-user-id", "eve", "x-user-roles", "customer%2C admin"), wantOK: true, wantSub: "eve"},
		{name: "a role with a space is not another role", md: metadata.Pairs("x-user-id", "eve", "x-user-roles", "customer,%20admin"), wantOK: true, wantSub: "eve"},
		{name: "encoded Unicode subject", md: metadata.Pairs("x-user-id", "partner|jos%C3%A9%20%F0%9F%99%82"), wantOK: true, wantSub: "partner|josé 🙂"},
		{name: "a subject that does not decode", md: metadata.Pairs("x-user-id", "bad%zz")},
		{name: "admin prefix is not admin", md: metadata.Pairs("x-user-id", "eve", "x-user-roles", "administrator"), wantOK: true, wantSub: "eve"},
		{name: "spoofed second subject", md: metadata.Pairs("x-user-id", "mallory", "x-user-id", "alice")},
		{name: "empty subject", md: metadata.Pairs("x-user-id", "")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.md != nil {
				ctx = metadata.NewIncomingContext(ctx, tc.md)
			}
			c, ok := passport.FromContext(ctx)
			if ok != tc.wantOK || c.Subject != tc.wantSub || c.IsAdmin() != tc.wantAdmin {
				t.Fatalf("got %+v ok=%v admin=%v; want sub=%q ok=%v admin=%v", c, ok, c.IsAdmin(), tc.wantSub, tc.wantOK, tc.wantAdmin)
			}
			_, err := passport.Require(ctx)
			if tc.wantOK != (err == nil) || (err != nil && status.Code(err) != codes.Unauthenticated) {
				t.Fatalf("Require = %v", err)
			}
			_, err = passport.RequireRole(ctx, passport.RoleAdmin)
			want := codes.OK
			switch {
			case !tc.wantOK:
				want = codes.Unauthenticated
			case !tc.wantAdmin:
				want = codes.PermissionDenied
			}
			if status.Code(err) != want {
				t.Fatalf("RequireRole code = %v, want %v", status.Code(err), want)
			}
		})
	}
}

func TestCanSee(t *testing.T) {
	tests := []struct {
		caller passport.Caller
		owner  string
		want   bool
	}{
		{passport.Caller{Subject: "alice"}, "alice", true},
		{passport.Caller{Subject: "bob"}, "alice", false},
		{passport.Caller{Subject: "root", Roles: []string{"admin"}}, "alice", true},
		{passport.Caller{}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.caller.Subject+"->"+tc.owner, func(t *testing.T) {
			if got := tc.caller.CanSee(tc.owner); got != tc.want {
				t.Fatalf("CanSee = %v, want %v", got, tc.want)
			}
		})
	}
}

func BenchmarkFromContext(b *testing.B) {
	ctx := metadata.NewIncomingContext(context.Background(), metadata.Pairs(
		"x-user-id", "alice", "x-user-roles", "customer,admin", "x-user-auth", "jwt",
		"content-type", "application/grpc", "user-agent", "grpc-go", ":authority", "orders", "traceparent", "00-x"))
	b.ReportAllocs()
	for b.Loop() {
		c, ok := passport.FromContext(ctx)
		if !ok || !c.IsAdmin() {
			b.Fatal("no admin")
		}
	}
}
