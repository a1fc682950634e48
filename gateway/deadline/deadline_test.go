package deadline

import (
	"context"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/policy"
)

// TestBound: the route's timeout bounds the call unless the client's deadline is sooner, and
// ClientBound says which it was, decided when the deadline is set.
func TestBound(t *testing.T) {
	route := func(d time.Duration) *policy.Route { return &policy.Route{Policy: policy.Policy{Timeout: d}} }
	tests := []struct {
		name        string
		route       *policy.Route
		client      time.Duration // 0: no client deadline
		wantWithin  time.Duration // the call's deadline is at most this far; 0: no deadline
		clientBound bool
	}{
		{"no route: nothing changes", nil, 0, 0, false},
		{"no route, a client deadline", nil, time.Second, time.Second, false},
		{"route timeout, no client deadline", route(2 * time.Second), 0, 2 * time.Second, false},
		{"client deadline later than the route's", route(2 * time.Second), time.Hour, 2 * time.Second, false},
		{"client deadline sooner than the route's", route(2 * time.Second), time.Second, time.Second, true},
		{"route without timeout", route(0), time.Second, time.Second, false},
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
			got, cancel := bound(ctx)
			if cancel != nil {
				defer cancel()
			}
			dl, ok := got.Deadline()
			switch {
			case tt.wantWithin == 0 && ok:
				t.Errorf("deadline in %v, want none", time.Until(dl))
			case tt.wantWithin > 0 && (!ok || time.Until(dl) > tt.wantWithin):
				t.Errorf("deadline %v (set %v), want within %v", time.Until(dl), ok, tt.wantWithin)
			}
			if ClientBound(got) != tt.clientBound {
				t.Errorf("ClientBound = %v, want %v", ClientBound(got), tt.clientBound)
			}
		})
	}
}
