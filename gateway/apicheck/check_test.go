package apicheck

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/config"
)

// The repo's folders, from this package.
const (
	repoProto     = "../../proto"
	repoGoogleAPI = "../../third_party/googleapis"
)

// writeProtos writes files (name -> content) under a new temporary folder and returns it.
func writeProtos(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func compileDir(t *testing.T, dir string) *Schema {
	t.Helper()
	s, err := Compile(context.Background(), Source{Dir: dir, ImportPaths: []string{repoProto, repoGoogleAPI}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// svcProto is a throwaway proto of package t.v1 with the given service body (and anything
// else after it); it declares the role "admin".
func svcProto(body string) string {
	return `syntax = "proto3";

package t.v1;

import "gateway/v1/policy.proto";
import "google/api/annotations.proto";

option (gateway.v1.roles) = "admin";

message M {
  string id = 1;
  string sku = 2;
  string item_sku = 3;
}

` + body
}

func TestCheckRefuses(t *testing.T) {
	tests := []struct {
		name  string
		files map[string]string
		// want are regular expressions, one per problem line, in order.
		want []string
	}{
		{
			name: "two variables on the same path",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  rpc A(M) returns (M) {
    option (google.api.http) = {get: "/v1/items/{sku}"};
  }
  rpc B(M) returns (M) {
    option (google.api.http) = {get: "/v1/items/{item_sku}"};
  }
}
`)},
			want: []string{`t/v1/a.proto:21: GET /v1/items/\{item_sku\} can match the same requests as GET /v1/items/\{sku\} \(rpc t.v1.S/B vs rpc t.v1.S/A at .*t/v1/a.proto:18\)`},
		},
		{
			name: "a literal matched by a variable, across files",
			files: map[string]string{
				"t/v1/a.proto": svcProto(`service S {
  rpc A(M) returns (M) {
    option (google.api.http) = {get: "/v1/items/{id}"};
  }
}
`),
				"t/v1/b.proto": strings.Replace(strings.Replace(svcProto(`service Special {
  rpc Get(M) returns (M) {
    option (google.api.http) = {get: "/v1/items/special"};
  }
}
`), "message M {", "message N {", 1), "(M) returns (M)", "(N) returns (N)", 1),
			},
			want: []string{`t/v1/b.proto:18: GET /v1/items/special can match .* \(rpc t.v1.Special/Get vs rpc t.v1.S/A at .*t/v1/a.proto:18\)`},
		},
		{
			name: "an additional binding with a sub-pattern and a verb",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  rpc A(M) returns (M) {
    option (google.api.http) = {post: "/v1/{id=shelves/*}:cancel"};
  }
  rpc B(M) returns (M) {
    option (google.api.http) = {
      get: "/v1/b"
      additional_bindings: {post: "/v1/shelves/{sku}:cancel"}
    };
  }
}
`)},
			want: []string{`POST /v1/shelves/\{sku\}:cancel can match the same requests as POST /v1/\{id=shelves/\*\}:cancel \(rpc t.v1.S/B vs rpc t.v1.S/A`},
		},
		{
			name: "a verbless route declared after the custom method it would take",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  rpc Watch(M) returns (stream M) {
    option (google.api.http) = {get: "/v1/items/{id}:watch"};
  }
  rpc Get(M) returns (M) {
    option (google.api.http) = {get: "/v1/items/{id}"};
  }
}
`)},
			want: []string{`t/v1/a.proto:21: GET /v1/items/\{id\} takes the requests of GET /v1/items/\{id\}:watch \(its last variable matches "x:watch", and grpc-gateway tries it first\): declare the custom method after it \(rpc t.v1.S/Get vs rpc t.v1.S/Watch at .*a.proto:18\)`},
		},
		{
			name: "auth none with roles, from the service and the method",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  option (gateway.v1.service_policy) = {roles: "admin"};
  rpc A(M) returns (M) {
    option (google.api.http) = {get: "/v1/a"};
    option (gateway.v1.policy) = {auth: AUTH_MODE_NONE};
  }
}
`)},
			want: []string{`t/v1/a.proto:20: rpc t.v1.S/A: auth AUTH_MODE_NONE with roles admin: a public RPC checks no role`},
		},
		{
			name: "auth optional with roles",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  rpc A(M) returns (M) {
    option (google.api.http) = {get: "/v1/a"};
    option (gateway.v1.policy) = {
      auth: AUTH_MODE_OPTIONAL
      roles: "admin"
    };
  }
}
`)},
			want: []string{`rpc t.v1.S/A: auth AUTH_MODE_OPTIONAL with roles admin: a caller without a credential is refused anyway`},
		},
		{
			name: "a role no file declares",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  rpc A(M) returns (M) {
    option (google.api.http) = {get: "/v1/a"};
    option (gateway.v1.policy) = {roles: "amdin"};
  }
}
`)},
			want: []string{`t/v1/a.proto:19: rpc t.v1.S/A: role "amdin" is not declared`},
		},
		{
			name: "a policy on an RPC with no route, a service policy on a service with none",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  option (gateway.v1.service_policy) = {timeout: "1s"};
  rpc A(M) returns (M) {
    option (gateway.v1.policy) = {timeout: "1s"};
  }
}
`)},
			want: []string{
				`t/v1/a.proto:17: service t.v1.S has a gateway.v1.service_policy but no RPC with a google.api.http route`,
				`t/v1/a.proto:19: rpc t.v1.S/A: has a gateway.v1.policy but no google.api.http route`,
			},
		},
		{
			name: "invalid values start-up refuses",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  rpc A(M) returns (M) {
    option (google.api.http) = {get: "/v1/a"};
    option (gateway.v1.policy) = {
      timeout: "soon"
      rate_limit: {requests: 10}
      fallback: {json_body: "{nope"}
      delegates: "t.v1.Nowhere"
    };
  }
}
`)},
			want: []string{
				`t/v1/a.proto:19: rpc t.v1.S/A: rate_limit.per: "" is not a duration`,
				`t/v1/a.proto:19: rpc t.v1.S/A: rate_limit: per: must be a positive duration`,
				`t/v1/a.proto:19: rpc t.v1.S/A: timeout: "soon" is not a positive duration`,
				`t/v1/a.proto:19: rpc t.v1.S/A: fallback: json_body: not valid JSON`,
				`t/v1/a.proto:19: rpc t.v1.S/A: delegates: "t.v1.Nowhere" is not a service of the compiled protos`,
			},
		},
		{
			name: "a template grpc-gateway would not parse",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  rpc A(M) returns (M) {
    option (google.api.http) = {get: "/v1/{id=**}/tail"};
  }
}
`)},
			want: []string{`rpc t.v1.S/A: path template "/v1/\{id=\*\*\}/tail": \*\* must be the last segment`},
		},
		{
			name: "clean: same path, other methods; other verbs after the verbless; delegates declared",
			files: map[string]string{"t/v1/a.proto": svcProto(`service S {
  option (gateway.v1.service_policy) = {delegates: "t.v1.S"};
  rpc A(M) returns (M) {
    option (google.api.http) = {get: "/v1/items/{id}"};
  }
  rpc B(M) returns (M) {
    option (google.api.http) = {
      post: "/v1/items/{id}"
      body: "*"
    };
  }
  rpc C(M) returns (M) {
    option (google.api.http) = {get: "/v1/items/{id}:watch"};
    option (gateway.v1.policy) = {
      roles: "admin"
      rate_limit: {
        requests: 10
        per: "1s"
        burst: 2
      }
    };
  }
}
`)},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probs := Check(compileDir(t, writeProtos(t, tt.files)))
			if len(probs) != len(tt.want) {
				t.Fatalf("%d problems, want %d:\n%s", len(probs), len(tt.want), render(probs))
			}
			for i, p := range probs {
				if !regexp.MustCompile(tt.want[i]).MatchString(p.String()) {
					t.Errorf("problem %d:\n got %s\nwant %s", i, p, tt.want[i])
				}
			}
		})
	}
}

// TestRepoProtosPass: the repo's own protos are clean.
func TestRepoProtosPass(t *testing.T) {
	s, err := Compile(context.Background(), Source{Dir: repoProto, ImportPaths: []string{repoGoogleAPI}})
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Services()) < 4 {
		t.Fatalf("compiled %d services, want the shop's four", len(s.Services()))
	}
	if probs := Check(s); len(probs) > 0 {
		t.Errorf("the repo's protos:\n%s", render(probs))
	}
}

func TestCompileRefusesBrokenProtos(t *testing.T) {
	dir := writeProtos(t, map[string]string{"t/v1/a.proto": "syntax = \"proto3\";\npackage t.v1;\nmessage M { Nope x = 1; }\n"})
	_, err := Compile(context.Background(), Source{Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "t/v1/a.proto:3") {
		t.Errorf("err = %v, want the file and line", err)
	}
}

func render(probs []Problem) string {
	var b strings.Builder
	for _, p := range probs {
		b.WriteString(p.String() + "\n")
	}
	return b.String()
}

func TestCheckConfig(t *testing.T) {
	s, err := Compile(context.Background(), Source{Dir: repoProto, ImportPaths: []string{repoGoogleAPI}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"clean", "routes: {shop.order.v1.OrderService/CancelOrder: {roles: [admin]}}", nil},
		{"an override naming no RPC", "listen: 127.0.0.1:0\nroutes:\n  shop.order.v1.OrderService/Nope: {timeout: 1s}\n",
			[]string{`gw.yaml:3: routes: "shop.order.v1.OrderService/Nope" names no served service or RPC`}},
		{"public with roles, from the service's override", "routes:\n  shop.inventory.v1.InventoryService:\n    roles: [admin]\n",
			[]string{`gw.yaml:2: rpc shop.inventory.v1.InventoryService/GetItem: resolves to auth none with roles admin`,
				`gw.yaml:2: rpc shop.inventory.v1.InventoryService/ListItems: resolves to auth none with roles admin`}},
		{"an undeclared role and delegate", "routes: {shop.order.v1.OrderService/GetOrder: {roles: [root], delegates: [x.v1.Gone]}}",
			[]string{`gw.yaml:1: rpc shop.order.v1.OrderService/GetOrder: role "root" is not declared`,
				`gw.yaml:1: rpc shop.order.v1.OrderService/GetOrder: delegates: "x.v1.Gone" is not a service`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "gw.yaml")
			if err := os.WriteFile(path, []byte(tt.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, err := config.Load(path)
			if err != nil {
				t.Fatal(err)
			}
			probs := CheckConfig(s, cfg, path)
			if len(probs) != len(tt.want) {
				t.Fatalf("%d problems, want %d:\n%s", len(probs), len(tt.want), render(probs))
			}
			for i, p := range probs {
				if !strings.HasPrefix(p.String(), filepath.Dir(path)+"/"+tt.want[i]) {
					t.Errorf("got %s\nwant %s...", p, tt.want[i])
				}
			}
		})
	}
}
