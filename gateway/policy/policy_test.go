package policy_test

import (
	"context"
	"testing"

	"github.com/acme/shopgate/gateway/policy"
)

func TestContext(t *testing.T) {
	rt := &policy.Route{RPC: "/a.B/C"}
	tests := []struct {
		name string
		ctx  context.Context
		want *policy.Route
	}{
		{"none", context.Background(), nil},
		{"NewContext", policy.NewContext(context.Background(), rt), rt},
		{"under ContextKey", context.WithValue(context.Background(), policy.ContextKey(), rt), rt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := policy.FromContext(tt.ctx); got != tt.want {
				t.Errorf("FromContext = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestAuthModeString(t *testing.T) {
	for m, want := range map[policy.AuthMode]string{policy.AuthRequired: "required", policy.AuthOptional: "optional", policy.AuthNone: "none"} {
		if got := m.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", m, got, want)
		}
	}
	if (policy.RateLimit{Requests: 1}).Enabled() || !(policy.RateLimit{Requests: 1, Per: 1}).Enabled() {
		t.Error("RateLimit.Enabled wrong")
	}
}
