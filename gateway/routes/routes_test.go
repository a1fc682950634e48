package routes_test

import (
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/routes"
	gatewayv1 "github.com/acme/shopgate/gen/gateway/v1"
	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
)

// testService compiles a service "test.v1.Svc" with three methods:
// Get (GET /v1/things/{id}), Post (POST /v1/things) and Do (POST /v1/things/{id}:do, which
// carries methodPolicy), and svcPolicy as its service policy.
func testService(t testing.TB, svcPolicy, methodPolicy *gatewayv1.Policy) protoreflect.ServiceDescriptor {
	t.Helper()
	method := func(name, in string, rule *annotations.HttpRule, pol *gatewayv1.Policy) *descriptorpb.MethodDescriptorProto {
		opts := &descriptorpb.MethodOptions{}
		proto.SetExtension(opts, annotations.E_Http, rule)
		if pol != nil {
			proto.SetExtension(opts, gatewayv1.E_Policy, pol)
		}
		return &descriptorpb.MethodDescriptorProto{Name: proto.String(name), InputType: proto.String(in), OutputType: proto.String(".test.v1.Msg"), Options: opts}
	}
	svcOpts := &descriptorpb.ServiceOptions{}
	if svcPolicy != nil {
		proto.SetExtension(svcOpts, gatewayv1.E_ServicePolicy, svcPolicy)
	}
	fdp := &descriptorpb.FileDescriptorProto{
		Name:       proto.String("test/v1/svc_" + strings.ReplaceAll(t.Name(), "/", "_") + ".proto"),
		Package:    proto.String("test.v1"),
		Syntax:     proto.String("proto3"),
		Dependency: []string{"google/api/annotations.proto", "gateway/v1/policy.proto"},
		MessageType: []*descriptorpb.DescriptorProto{{
			Name:  proto.String("Msg"),
			Field: []*descriptorpb.FieldDescriptorProto{{Name: proto.String("id"), JsonName: proto.String("id"), Number: proto.Int32(1), Type: descriptorpb.FieldDescriptorProto_TYPE_STRING.Enum(), Label: descriptorpb.FieldDescriptorProto_LABEL_OPTIONAL.Enum()}},
		}},
		Service: []*descriptorpb.ServiceDescriptorProto{{
			Name:    proto.String("Svc"),
			Options: svcOpts,
			Method: []*descriptorpb.MethodDescriptorProto{
				method("Get", ".test.v1.Msg", &annotations.HttpRule{Pattern: &annotations.HttpRule_Get{Get: "/v1/things/{id}"}}, nil),
				method("Post", ".test.v1.Msg", &annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/things"}, Body: "*"}, nil),
				method("Do", ".test.v1.Msg", &annotations.HttpRule{Pattern: &annotations.HttpRule_Post{Post: "/v1/things/{id}:do"}, Body: "*",
					AdditionalBindings: []*annotations.HttpRule{{Pattern: &annotations.HttpRule_Get{Get: "/v1/things/{id}:do"}}}}, methodPolicy),
			},
		}},
	}
	fd, err := protodesc.NewFile(fdp, protoregistry.GlobalFiles)
	if err != nil {
		t.Fatalf("compiling test service: %v", err)
	}
	return fd.Services().Get(0)
}

func mustParse(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	return cfg
}

func route(t *testing.T, tb *routes.Table, method, tpl string) *policy.Route {
	t.Helper()
	r := tb.Lookup(routes.Key(method, routes.NormalizeTemplate(tpl)))
	if r == nil {
		t.Fatalf("no route for %s %s", method, tpl)
	}
	return r
}

func TestPrecedence(t *testing.T) {
	defaultRL := policy.RateLimit{Requests: 100, Per: time.Minute, Burst: 100}
	tests := []struct {
		name         string
		yaml         string
		svcPolicy    *gatewayv1.Policy
		methodPolicy *gatewayv1.Policy
		method, path string
		want         policy.Policy
	}{
		{
			name: "built-in safe defaults on a POST", method: "POST", path: "/v1/things",
			want: policy.Policy{Auth: policy.AuthRequired, RateLimit: defaultRL, Timeout: 10 * time.Second, Idempotent: false},
		},
		{
			name: "GET is idempotent by default", method: "GET", path: "/v1/things/{id}",
			want: policy.Policy{Auth: policy.AuthRequired, RateLimit: defaultRL, Timeout: 10 * time.Second, Idempotent: true},
		},
		{
			name: "YAML defaults beat built-in", method: "POST", path: "/v1/things",
			yaml: "defaults: {timeout: 4s, rate_limit: {requests: 7, per: 1s}}",
			want: policy.Policy{RateLimit: policy.RateLimit{Requests: 7, Per: time.Second, Burst: 7}, Timeout: 4 * time.Second},
		},
		{
			name: "proto service policy beats YAML defaults", method: "POST", path: "/v1/things",
			yaml:      "defaults: {timeout: 4s}",
			svcPolicy: &gatewayv1.Policy{Timeout: "5s", Auth: gatewayv1.AuthMode_AUTH_MODE_OPTIONAL, Roles: []string{"staff"}},
			want:      policy.Policy{Auth: policy.AuthOptional, Roles: []string{"staff"}, RateLimit: defaultRL, Timeout: 5 * time.Second},
		},
		{
			name: "proto method policy beats service policy", method: "POST", path: "/v1/things/{id}:do",
			svcPolicy:    &gatewayv1.Policy{Timeout: "5s", Roles: []string{"staff"}},
			methodPolicy: &gatewayv1.Policy{Timeout: "300s", Roles: []string{"admin"}, Idempotent: proto.Bool(true), RateLimit: &gatewayv1.RateLimit{Requests: 3, Per: "10s", Burst: 1}, Fallback: &gatewayv1.Fallback{JsonBody: `{"x":1}`}},
			want: policy.Policy{Roles: []string{"admin"}, RateLimit: policy.RateLimit{Requests: 3, Per: 10 * time.Second, Burst: 1}, Timeout: 300 * time.Second, Idempotent: true,
				Fallback: &policy.Fallback{HTTPStatus: 200, JSONBody: `{"x":1}`}},
		},
		{
			name: "method policy leaves unset fields to the service policy", method: "POST", path: "/v1/things/{id}:do",
			svcPolicy:    &gatewayv1.Policy{Timeout: "5s", Auth: gatewayv1.AuthMode_AUTH_MODE_NONE},
			methodPolicy: &gatewayv1.Policy{Roles: []string{"admin"}},
			want:         policy.Policy{Auth: policy.AuthNone, Roles: []string{"admin"}, RateLimit: defaultRL, Timeout: 5 * time.Second},
		},
		{
			name: "YAML service override beats the proto method policy", method: "POST", path: "/v1/things/{id}:do",
			yaml:         "routes: {test.v1.Svc: {timeout: 3s, auth: none}}",
			methodPolicy: &gatewayv1.Policy{Timeout: "300s", Auth: gatewayv1.AuthMode_AUTH_MODE_REQUIRED},
			want:         policy.Policy{Auth: policy.AuthNone, RateLimit: defaultRL, Timeout: 3 * time.Second},
		},
		{
			name: "YAML RPC override beats the YAML service override", method: "POST", path: "/v1/things/{id}:do",
			yaml: `routes:
  test.v1.Svc: {timeout: 3s, roles: [a]}
  test.v1.Svc/Do: {timeout: 1s, idempotent: true, allow_cidrs: [10.1.2.3/8], deny_cidrs: [10.9.0.0/16], fallback: {http_status: 203, json_body: '[]'}}`,
			methodPolicy: &gatewayv1.Policy{Timeout: "300s"},
			want: policy.Policy{Roles: []string{"a"}, RateLimit: defaultRL, Timeout: time.Second, Idempotent: true,
				AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, DenyCIDRs: []netip.Prefix{netip.MustParsePrefix("10.9.0.0/16")},
				Fallback: &policy.Fallback{HTTPStatus: 203, JSONBody: `[]`}},
		},
		{
			name: "YAML empty roles clear the proto roles", method: "POST", path: "/v1/things/{id}:do",
			yaml:         "routes: {test.v1.Svc/Do: {roles: []}}",
			methodPolicy: &gatewayv1.Policy{Roles: []string{"admin"}},
			want:         policy.Policy{Roles: []string{}, RateLimit: defaultRL, Timeout: 10 * time.Second},
		},
		{
			name: "proto delegates: the method's replace the service's", method: "POST", path: "/v1/things/{id}:do",
			svcPolicy:    &gatewayv1.Policy{Delegates: []string{"a.v1.A", "b.v1.B"}},
			methodPolicy: &gatewayv1.Policy{Delegates: []string{"c.v1.C"}},
			want:         policy.Policy{RateLimit: defaultRL, Timeout: 10 * time.Second, Delegates: []string{"c.v1.C"}},
		},
		{
			name: "proto service delegates reach every method", method: "POST", path: "/v1/things",
			svcPolicy: &gatewayv1.Policy{Delegates: []string{"a.v1.A"}},
			want:      policy.Policy{RateLimit: defaultRL, Timeout: 10 * time.Second, Delegates: []string{"a.v1.A"}},
		},
		{
			name: "YAML delegates override, [] clears them", method: "POST", path: "/v1/things/{id}:do",
			yaml:      "routes: {test.v1.Svc: {delegates: [x.v1.X]}, test.v1.Svc/Do: {delegates: []}}",
			svcPolicy: &gatewayv1.Policy{Delegates: []string{"a.v1.A"}},
			want:      policy.Policy{RateLimit: defaultRL, Timeout: 10 * time.Second, Delegates: []string{}},
		},
		{
			name: "proto cache, then the YAML override replaces it whole", method: "GET", path: "/v1/things/{id}",
			svcPolicy: &gatewayv1.Policy{Cache: &gatewayv1.Cache{Ttl: "5s", MaxAge: "60s"}},
			want:      policy.Policy{RateLimit: defaultRL, Timeout: 10 * time.Second, Idempotent: true, Cache: policy.Cache{TTL: 5 * time.Second, MaxAge: time.Minute}},
		},
		{
			name: "YAML cache override", method: "GET", path: "/v1/things/{id}",
			yaml:      "routes: {test.v1.Svc: {cache: {ttl: 2s}}}",
			svcPolicy: &gatewayv1.Policy{Cache: &gatewayv1.Cache{Ttl: "5s", MaxAge: "60s"}},
			want:      policy.Policy{RateLimit: defaultRL, Timeout: 10 * time.Second, Idempotent: true, Cache: policy.Cache{TTL: 2 * time.Second}},
		},
		{
			name: "an RPC override applies to every binding of the RPC", method: "GET", path: "/v1/things/{id}:do",
			yaml: "routes: {test.v1.Svc/Do: {rate_limit: {requests: 1, per: 1h}}}",
			want: policy.Policy{RateLimit: policy.RateLimit{Requests: 1, Per: time.Hour, Burst: 1}, Timeout: 10 * time.Second, Idempotent: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sd := testService(t, tt.svcPolicy, tt.methodPolicy)
			tb, err := routes.Build(mustParse(t, tt.yaml), []protoreflect.ServiceDescriptor{sd})
			if err != nil {
				t.Fatal(err)
			}
			got := route(t, tb, tt.method, tt.path).Policy
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("policy =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name         string
		yaml         string
		methodPolicy *gatewayv1.Policy
		want         []string
	}{
		{"unknown service override", "routes: {test.v1.Nope: {timeout: 1s}}", nil, []string{`"test.v1.Nope"`}},
		{"unknown RPC override", "routes: {test.v1.Svc/Nope: {timeout: 1s}}", nil, []string{`"test.v1.Svc/Nope"`}},
		{"bad proto timeout", "", &gatewayv1.Policy{Timeout: "soon"}, []string{"/test.v1.Svc/Do", "gateway.v1.policy", "timeout", "soon"}},
		{"bad proto rate period", "", &gatewayv1.Policy{RateLimit: &gatewayv1.RateLimit{Requests: 1, Per: "x"}}, []string{"rate_limit.per"}},
		{"zero proto rate", "", &gatewayv1.Policy{RateLimit: &gatewayv1.RateLimit{Per: "1s"}}, []string{"rate_limit", "requests"}},
		{"bad proto fallback", "", &gatewayv1.Policy{Fallback: &gatewayv1.Fallback{JsonBody: "nope"}}, []string{"fallback: json_body"}},
		{"bad proto cache ttl", "", &gatewayv1.Policy{Cache: &gatewayv1.Cache{Ttl: "soon"}}, []string{"cache.ttl", "soon"}},
		{"negative proto cache ttl", "", &gatewayv1.Policy{Cache: &gatewayv1.Cache{Ttl: "-1s"}}, []string{"cache: ttl"}},
		{"fractional proto max_age", "", &gatewayv1.Policy{Cache: &gatewayv1.Cache{MaxAge: "1.5s"}}, []string{"cache: max_age", "whole seconds"}},
		{"bad proto delegate", "", &gatewayv1.Policy{Delegates: []string{"/shop.order.v1.OrderService/GetOrder"}}, []string{"delegates", "full gRPC service name"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := routes.Build(mustParse(t, tt.yaml), []protoreflect.ServiceDescriptor{testService(t, nil, tt.methodPolicy)})
			if err == nil {
				t.Fatal("Build accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestDefaultRouteIsSafe(t *testing.T) {
	tb, err := routes.Build(mustParse(t, "defaults: {timeout: 7s}"), nil)
	if err != nil {
		t.Fatal(err)
	}
	d := tb.Default()
	if d.Policy.Auth != policy.AuthRequired || d.Policy.Timeout != 7*time.Second || !d.Policy.RateLimit.Enabled() || d.Policy.Idempotent {
		t.Errorf("default route = %+v, want auth required, default timeout and rate limit, not idempotent", d.Policy)
	}
}

func TestNormalizeTemplate(t *testing.T) {
	tests := []struct{ in, want string }{
		{"/v1/orders", "/v1/orders"},
		{"/v1/orders/{id}", "/v1/orders/{id=*}"},
		{"/v1/orders/{id}:cancel", "/v1/orders/{id=*}:cancel"},
		{"/v1/inventory/items/{item.sku}", "/v1/inventory/items/{item.sku=*}"},
		{"/v1/{name=shelves/*}/books/{book}", "/v1/{name=shelves/*}/books/{book=*}"},
		{"/v1/files/{path=**}", "/v1/files/{path=**}"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := routes.NormalizeTemplate(tt.in); got != tt.want {
				t.Errorf("NormalizeTemplate(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestAllowed(t *testing.T) {
	tb, err := routes.Build(mustParse(t, ""), []protoreflect.ServiceDescriptor{testService(t, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		path string
		want []string
	}{
		{"/v1/things", []string{http.MethodPost}},
		{"/v1/things/42", []string{http.MethodGet}},
		{"/v1/things/42:do", []string{http.MethodGet, http.MethodPost}},
		{"/v1/things/42/more", nil},
		{"/v1/things/", nil},
		{"/v2/things", nil},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			if got := tb.Allowed(tt.path); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Allowed(%q) = %v, want %v", tt.path, got, tt.want)
			}
		})
	}
}

func TestLookupDoesNotAllocate(t *testing.T) {
	tb, err := routes.Build(mustParse(t, ""), []protoreflect.ServiceDescriptor{testService(t, nil, nil)})
	if err != nil {
		t.Fatal(err)
	}
	key := routes.Key("POST", "/v1/things/{id=*}:do")
	if allocs := testing.AllocsPerRun(100, func() {
		if tb.Lookup(key) == nil {
			t.Fatal("lookup failed")
		}
	}); allocs != 0 {
		t.Errorf("Lookup allocates %v times", allocs)
	}
}

func FuzzAllowed(f *testing.F) {
	for _, s := range []string{"/v1/things/42:do", "/", "", "/::", "/v1/{x}", "//a//b:"} {
		f.Add(s)
	}
	tb, err := routes.Build(mustParse(f, ""), []protoreflect.ServiceDescriptor{testService(f, nil, nil)})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, path string) {
		for _, m := range tb.Allowed(path) {
			if m != http.MethodGet && m != http.MethodPost {
				t.Fatalf("Allowed(%q) invented method %q", path, m)
			}
		}
	})
}
