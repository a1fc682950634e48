package deadline

import (
	"context"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/policy"
)

// TestMark: a call is ClientBound exactly when the client's deadline is sooner than the route's
// timeout; the context is never given a deadline of its own (grpc-go applies the route's), and
// a call without a client deadline passes untouched.
func TestMark(t *testing.T) {
	route := func(d time.Duration) *policy.Route { return &policy.Route{Policy: policy.Policy{Timeout: d}} }
	tests := []struct {
		name        string
		route       *policy.Route
		client      time.Duration // 0: no client deadline
		clientBound bool
	}{
		{"no route", nil, time.Second, false},
		{"route timeout, no client deadline", route(2 * time.Second), 0, false},
		{"client deadline later than the route's", route(2 * time.Second), time.Hour, false},
		{"client deadline sooner than the route's", route(2 * time.Second), time.Second, true},
		{"route without timeout", route(0), time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			if tt.client > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tt.client)
				defer cancel()
			}
			if tt.route != nil {
				ctx = policy.NewContext(ctx, tt.route)
			}
			got := mark(ctx)
			if ClientBound(got) != tt.clientBound {
				t.Errorf("ClientBound = %v, want %v", ClientBound(got), tt.clientBound)
			}
			want, wantOK := ctx.Deadline()
			if dl, ok := got.Deadline(); dl != want || ok != wantOK {
				t.Errorf("deadline %v %v, want the caller's %v %v", dl, ok, want, wantOK)
			}
			if !tt.clientBound && got != ctx {
				t.Error("an unmarked call got a new context")
			}
		})
	}
}
