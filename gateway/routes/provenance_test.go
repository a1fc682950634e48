package routes_test

import (
	"testing"

	"github.com/acme/shopgate/gateway/routes"
	gatewayv1 "github.com/acme/shopgate/gen/gateway/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// TestProvenance: each resolved field names the layer it came from, the strongest that set it.
func TestProvenance(t *testing.T) {
	tests := []struct {
		name         string
		yaml         string
		svcPolicy    *gatewayv1.Policy
		methodPolicy *gatewayv1.Policy
		want         map[string]routes.Layer
	}{
		{
			name: "nothing set: every field from the defaults, YAML defaults included",
			yaml: "defaults: {timeout: 4s}",
			want: map[string]routes.Layer{"auth": routes.LayerDefault, "timeout": routes.LayerDefault, "rate_limit": routes.LayerDefault,
				"roles": routes.LayerDefault, "idempotent": routes.LayerDefault, "fallback": routes.LayerDefault, "delegates": routes.LayerDefault,
				"allow_cidrs": routes.LayerDefault, "deny_cidrs": routes.LayerDefault},
		},
		{
			name:      "proto service",
			svcPolicy: &gatewayv1.Policy{Timeout: "5s", Delegates: []string{"a.v1.B"}},
			want:      map[string]routes.Layer{"timeout": routes.LayerProtoService, "delegates": routes.LayerProtoService, "auth": routes.LayerDefault},
		},
		{
			name:         "proto method over proto service; unset proto3 fields are not set",
			svcPolicy:    &gatewayv1.Policy{Timeout: "5s", Roles: []string{"staff"}},
			methodPolicy: &gatewayv1.Policy{Timeout: "6s", Idempotent: proto.Bool(false), RateLimit: &gatewayv1.RateLimit{Requests: 1, Per: "1s"}},
			want: map[string]routes.Layer{"timeout": routes.LayerProtoMethod, "roles": routes.LayerProtoService,
				"idempotent": routes.LayerProtoMethod, "rate_limit": routes.LayerProtoMethod, "auth": routes.LayerDefault, "fallback": routes.LayerDefault},
		},
		{
			name:         "YAML service over proto",
			yaml:         "routes: {test.v1.Svc: {timeout: 3s, allow_cidrs: [10.0.0.0/8]}}",
			methodPolicy: &gatewayv1.Policy{Timeout: "6s", Auth: gatewayv1.AuthMode_AUTH_MODE_OPTIONAL},
			want:         map[string]routes.Layer{"timeout": routes.LayerYAMLService, "allow_cidrs": routes.LayerYAMLService, "auth": routes.LayerProtoMethod},
		},
		{
			name:         "YAML RPC over YAML service; an empty list still sets",
			yaml:         "routes: {test.v1.Svc: {timeout: 3s, roles: [a]}, test.v1.Svc/Do: {timeout: 2s, roles: []}}",
			methodPolicy: &gatewayv1.Policy{Roles: []string{"admin"}},
			want:         map[string]routes.Layer{"timeout": routes.LayerYAMLRPC, "roles": routes.LayerYAMLRPC},
		},
		{
			name:         "cache: proto method, then the YAML RPC override",
			yaml:         "routes: {test.v1.Svc/Do: {cache: {ttl: 2s}}}",
			methodPolicy: &gatewayv1.Policy{Cache: &gatewayv1.Cache{Ttl: "5s"}},
			want:         map[string]routes.Layer{"cache": routes.LayerYAMLRPC},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tb, err := routes.Build(mustParse(t, tt.yaml), []protoreflect.ServiceDescriptor{testService(t, tt.svcPolicy, tt.methodPolicy)})
			if err != nil {
				t.Fatal(err)
			}
			prov := tb.Provenance(route(t, tb, "POST", "/v1/things/{id}:do"))
			for field, want := range tt.want {
				if got := prov[field]; got != want {
					t.Errorf("%s from %q, want %q (all: %v)", field, got, want, prov)
				}
			}
			// The listing shows the same layers, beside the values.
			for _, e := range tb.Entries(func(string) bool { return true }) {
				if e.RPC == "/test.v1.Svc/Do" && e.Method == "POST" {
					for field, want := range tt.want {
						if e.Policy[field].From != want {
							t.Errorf("listing: %s from %q, want %q", field, e.Policy[field].From, want)
						}
					}
				}
			}
		})
	}
	tb, err := routes.Build(mustParse(t, ""), []protoreflect.ServiceDescriptor{testService(t, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if p := tb.Provenance(tb.Default()); p["auth"] != routes.LayerDefault || p["timeout"] != routes.LayerDefault {
		t.Errorf("the default route: %v", p)
	}
	for _, e := range tb.Entries(func(string) bool { return true }) {
		if c, ok := e.Policy["cache"].Value.(map[string]any); !ok || c["ttl"] != "0s" || c["max_age"] != "0s" {
			t.Errorf("listing of %s %s: cache %v, want ttl and max_age 0s", e.Method, e.Path, e.Policy["cache"].Value)
		}
	}
}
