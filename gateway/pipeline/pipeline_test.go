package pipeline

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc"

	"github.com/acme/shopgate/gateway/upstream"
)

func mw(next http.Handler) http.Handler { return next }

func unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	return invoker(ctx, method, req, reply, cc, opts...)
}

func valid() []Stage {
	return []Stage{
		{Name: "a", Layer: Edge, HTTP: mw},
		{Name: "router", Layer: Router},
		{Name: "b", Layer: Route, HTTP: mw},
		{Name: "handler", Layer: Handler},
		{Name: "c", Layer: Client, Unary: unary},
		{Name: "d", Layer: Transport, Throttling: &upstream.RetryThrottling{MaxTokens: 1, TokenRatio: 1}},
	}
}

// TestNewRefusesMalformedTables: every rule New checks, each reported.
func TestNewRefusesMalformedTables(t *testing.T) {
	tests := []struct {
		name   string
		change func([]Stage) []Stage
		want   string
	}{
		{"valid", func(s []Stage) []Stage { return s }, ""},
		{"no name", func(s []Stage) []Stage { s[0].Name = ""; return s }, "no name"},
		{"a name twice", func(s []Stage) []Stage { s[2].Name = "a"; return s }, `"a": named twice`},
		{"layers out of order", func(s []Stage) []Stage { s[0], s[2] = s[2], s[0]; return s }, "layer edge after route"},
		{"an edge stage without HTTP", func(s []Stage) []Stage { s[0].HTTP = nil; return s }, `"a": a edge stage needs HTTP`},
		{"a client stage with HTTP", func(s []Stage) []Stage { s[4].HTTP = mw; return s }, `"c": a client stage needs Unary or Stream`},
		{"no router", func(s []Stage) []Stage { return slices.Delete(s, 1, 2) }, "one router and one handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.change(valid())...)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("New error = %v, want one about %q", err, tt.want)
			}
		})
	}
}

// TestWiringFollowsTheTable: HTTP wraps the stages of one layer in order, first outermost,
// and DialOptions returns the client stages and the transport's service config.
func TestWiringFollowsTheTable(t *testing.T) {
	var ran []string
	mark := func(name string) func(http.Handler) http.Handler {
		return func(next http.Handler) http.Handler {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { ran = append(ran, name); next.ServeHTTP(w, r) })
		}
	}
	stages := valid()
	stages = slices.Insert(stages, 1, Stage{Name: "a2", Layer: Edge, HTTP: mark("a2-ran")})
	stages[0].HTTP = mark("a-ran")
	p, err := New(stages...)
	if err != nil {
		t.Fatal(err)
	}
	var traced []string
	h := p.HTTP(Edge, http.HandlerFunc(func(http.ResponseWriter, *http.Request) { ran = append(ran, "end") }), func(s string) { traced = append(traced, s) })
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	if want := []string{"a-ran", "a2-ran", "end"}; !slices.Equal(ran, want) {
		t.Errorf("ran %v, want %v", ran, want)
	}
	if want := []string{"a", "a2"}; !slices.Equal(traced, want) {
		t.Errorf("traced %v, want %v", traced, want)
	}
	u, s, mcs, thr := p.DialOptions(nil)
	if len(u) != 1 || len(s) != 0 || mcs != nil || thr == nil || thr.MaxTokens != 1 {
		t.Errorf("DialOptions = %d unary, %d stream, %v, %+v", len(u), len(s), mcs, thr)
	}
	if got := strings.Join(p.Names(), ","); got != "a,a2,router,b,handler,c,d" {
		t.Errorf("Names = %s", got)
	}
}
