package apicheck

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

const diffBase = `syntax = "proto3";

package t.v1;

import "gateway/v1/policy.proto";
import "google/api/annotations.proto";

option (gateway.v1.roles) = "admin";
option (gateway.v1.roles) = "staff";

service S {
  rpc Get(GetRequest) returns (Item) {
    option (google.api.http) = {get: "/v1/items/{id}"};
    option (gateway.v1.policy) = {roles: "admin"};
  }
  rpc Put(Item) returns (Item) {
    option (google.api.http) = {
      put: "/v1/items/{id}"
      body: "*"
    };
  }
}

message GetRequest {
  string id = 1;
}

message Item {
  string id = 1;
  string name = 2;
  Kind kind = 3;
  Part part = 4;
}

message Part {
  int32 count = 1;
}

enum Kind {
  KIND_UNSPECIFIED = 0;
  KIND_A = 1;
}

message Unrelated {
  string x = 1;
}
`

func TestDiff(t *testing.T) {
	tests := []struct {
		name       string
		base, head [][2]string // replacements applied to diffBase
		want       []string    // regular expressions, one per change, in order; "loosened:" prefix for AuthLoosened
	}{
		{name: "identical"},
		{name: "additions are not changes", head: [][2]string{
			{"  Part part = 4;\n", "  Part part = 4;\n  string extra = 5;\n"},
			{"KIND_A = 1;\n", "KIND_A = 1;\n  KIND_B = 2;\n"},
			{`get: "/v1/items/{id}"};`, `get: "/v1/items/{id}" additional_bindings: {get: "/v2/items/{id}"}};`},
		}},
		{name: "a variable renamed keeps the route", head: [][2]string{{`get: "/v1/items/{id}"`, `get: "/v1/items/{id=*}"`}}},
		{name: "an unreachable message changes freely", head: [][2]string{{"  string x = 1;\n", ""}}},
		{name: "route moved", head: [][2]string{{`get: "/v1/items/{id}"`, `get: "/v1/things/{id}"`}},
			want: []string{`a.proto:12: route moved or removed: rpc t.v1.S/Get no longer serves GET /v1/items/\{id\} \(now: GET /v1/things/\{id\}\) \[acknowledge with the trailer API-Breaking: t.v1.S/Get\]`}},
		{name: "method changed", head: [][2]string{{`put: "/v1/items/{id}"`, `post: "/v1/items/{id}"`}},
			want: []string{`route moved or removed: rpc t.v1.S/Put no longer serves PUT /v1/items/\{id\} \(now: POST`}},
		{name: "body changed", head: [][2]string{{`body: "*"`, `body: "name"`}},
			want: []string{`rpc t.v1.S/Put: body "\*" -> "name"`}},
		{name: "rpc removed", head: [][2]string{{"  rpc Put(Item) returns (Item) {\n    option (google.api.http) = {\n      put: \"/v1/items/{id}\"\n      body: \"*\"\n    };\n  }\n", ""}},
			want: []string{`base:proto/t/v1/a.proto:16: route removed: rpc t.v1.S/Put is gone \(PUT /v1/items/\{id\}\)`}},
		{name: "made a stream", head: [][2]string{{"rpc Get(GetRequest) returns (Item)", "rpc Get(GetRequest) returns (stream Item)"}},
			want: []string{`rpc t.v1.S/Get: server streaming false -> true`}},
		{name: "renamed in JSON", head: [][2]string{{"string name = 2;", `string name = 2 [json_name = "title"];`}},
			want: []string{`a.proto:30: field renamed: t.v1.Item.name is "title" in JSON \(proto name\), was "name" \(proto name\) \(sent or received by rpc t.v1.S/Get, rpc t.v1.S/Put\) \[acknowledge with the trailer API-Breaking: t.v1.Item.name\]`}},
		{name: "a nested field removed", head: [][2]string{{"  int32 count = 1;\n", ""}},
			want: []string{`field removed: t.v1.Part.count \(JSON count, number 1\) \(sent or received by rpc t.v1.S/Get, rpc t.v1.S/Put\)`}},
		{name: "a nested field retyped (int64 is a JSON string)", head: [][2]string{{"int32 count = 1;", "int64 count = 1;"}},
			want: []string{`field type changed: t.v1.Part.count was int32, is int64`}},
		{name: "a field made repeated", head: [][2]string{{"string name = 2;", "repeated string name = 2;"}},
			want: []string{`field type changed: t.v1.Item.name was string, is repeated string`}},
		{name: "an enum value renamed", head: [][2]string{{"KIND_A = 1;", "KIND_AA = 1;"}},
			want: []string{`enum value renamed: t.v1.Kind 1 is KIND_AA in JSON, was KIND_A`}},
		{name: "roles dropped", head: [][2]string{{"    option (gateway.v1.policy) = {roles: \"admin\"};\n", ""}},
			want: []string{`loosened:rpc t.v1.S/Get: roles \[admin\] dropped: any authenticated caller is let in \[acknowledge with the trailer API-Auth-Loosened: t.v1.S/Get\]`}},
		{name: "made public", head: [][2]string{{`{roles: "admin"}`, `{auth: AUTH_MODE_NONE}`}},
			want: []string{`loosened:rpc t.v1.S/Get: auth loosened from AUTH_MODE_REQUIRED to AUTH_MODE_NONE`}},
		{name: "made optional by the service", head: [][2]string{{"service S {\n", "service S {\n  option (gateway.v1.service_policy) = {auth: AUTH_MODE_OPTIONAL};\n"}},
			want: []string{`loosened:rpc t.v1.S/Get: auth loosened from AUTH_MODE_REQUIRED to AUTH_MODE_OPTIONAL`, `loosened:rpc t.v1.S/Put: auth loosened`}},
		{name: "roles widened", head: [][2]string{{`{roles: "admin"}`, "{\n      roles: \"admin\"\n      roles: \"staff\"\n    }"}},
			want: []string{`loosened:rpc t.v1.S/Get: roles widened with \[staff\]`}},
		{name: "roles required", head: [][2]string{{"      body: \"*\"\n    };\n", "      body: \"*\"\n    };\n    option (gateway.v1.policy) = {roles: \"admin\"};\n"}},
			want: []string{`rpc t.v1.S/Put: roles \[admin\] now required \[acknowledge with the trailer API-Breaking: t.v1.S/Put\]`}},
		{name: "roles narrowed", base: [][2]string{{`{roles: "admin"}`, "{\n      roles: \"admin\"\n      roles: \"staff\"\n    }"}},
			want: []string{`rpc t.v1.S/Get: roles narrowed: \[staff\] no longer admitted`}},
		{name: "roles swapped: both", head: [][2]string{{`{roles: "admin"}`, `{roles: "staff"}`}},
			want: []string{`loosened:rpc t.v1.S/Get: roles widened with \[staff\]`, `rpc t.v1.S/Get: roles narrowed: \[admin\] no longer admitted`}},
		{name: "public made private", base: [][2]string{{`{roles: "admin"}`, `{auth: AUTH_MODE_NONE}`}},
			want: []string{`rpc t.v1.S/Get: auth tightened from AUTH_MODE_NONE to AUTH_MODE_REQUIRED`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			base := compileVariant(t, "base:proto", tt.base)
			head := compileVariant(t, "proto", tt.head)
			changes := Diff(base, head)
			if len(changes) != len(tt.want) {
				t.Fatalf("%d changes, want %d:\n%s", len(changes), len(tt.want), renderChanges(changes))
			}
			for i, c := range changes {
				want, kind := tt.want[i], Breaking
				if rest, ok := strings.CutPrefix(want, "loosened:"); ok {
					want, kind = rest, AuthLoosened
				}
				if c.Kind != kind || !regexp.MustCompile(want).MatchString(c.String()) {
					t.Errorf("change %d:\n got %s (kind %d)\nwant %s (kind %d)", i, c, c.Kind, want, kind)
				}
			}
		})
	}
}

// TestDiffSharedMessage: a field change reached from several RPCs is one change, which the
// field or any of those RPCs acknowledges.
func TestDiffSharedMessage(t *testing.T) {
	changes := Diff(compileVariant(t, "base:proto", nil), compileVariant(t, "proto", [][2]string{{"string name = 2;", "bytes name = 2;"}}))
	if len(changes) != 1 {
		t.Fatalf("changes:\n%s", renderChanges(changes))
	}
	c := changes[0]
	for _, key := range []string{"t.v1.Item.name", "t.v1.S/Get", "t.v1.S/Put"} {
		if !c.Acknowledged(map[string][]string{TrailerBreaking: {key}}) {
			t.Errorf("%q does not acknowledge %s", key, c)
		}
	}
	if c.Acknowledged(map[string][]string{TrailerAuthLoosened: {"t.v1.Item.name"}}) || c.Acknowledged(map[string][]string{TrailerBreaking: {"t.v1.S/Other"}}) {
		t.Errorf("the wrong trailer acknowledges %s", c)
	}
}

func compileVariant(t *testing.T, name string, repl [][2]string) *Schema {
	t.Helper()
	body := diffBase
	for _, r := range repl {
		if !strings.Contains(body, r[0]) {
			t.Fatalf("the base proto has no %q", r[0])
		}
		body = strings.Replace(body, r[0], r[1], 1)
	}
	dir := writeProtos(t, map[string]string{"t/v1/a.proto": body})
	s, err := Compile(context.Background(), Source{Dir: dir, Name: name, ImportPaths: []string{repoProto, repoGoogleAPI}})
	if err != nil {
		t.Fatalf("%v\n%s", err, body)
	}
	return s
}

func renderChanges(cs []Change) string {
	var b strings.Builder
	for _, c := range cs {
		b.WriteString(c.String() + "\n")
	}
	return b.String()
}

// TestAgainstGitRef: the base is read from a commit of a real git repository, and the trailers
// of the commits since acknowledge changes.
func TestAgainstGitRef(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed: %v", err)
	}
	repo := t.TempDir()
	run := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = repo
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	write := func(body string) {
		t.Helper()
		p := filepath.Join(repo, "proto", "t", "v1", "a.proto")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run("init", "-q", "-b", "main")
	if err := os.WriteFile(filepath.Join(repo, "README"), []byte("x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	run("add", ".")
	run("commit", "-q", "-m", "no protos yet")
	empty := run("rev-parse", "HEAD")
	write(diffBase)
	run("add", ".")
	run("commit", "-q", "-m", "protos")
	base := run("rev-parse", "HEAD")
	head := strings.Replace(strings.Replace(diffBase, `{roles: "admin"}`, `{auth: AUTH_MODE_NONE}`, 1), "int32 count = 1;", "int64 count = 1;", 1)
	write(head)
	run("add", ".")
	run("commit", "-q", "-m", "Get is public\n\nAPI-Auth-Loosened: t.v1.S/Get")

	src := Source{Dir: filepath.Join(repo, "proto"), ImportPaths: []string{repoProto, repoGoogleAPI}}
	hs, err := Compile(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	changes, acks, err := Against(context.Background(), repo, base, hs, src)
	if err != nil {
		t.Fatal(err)
	}
	if len(changes) != 2 {
		t.Fatalf("changes:\n%s", renderChanges(changes))
	}
	for _, c := range changes {
		wantAcked := c.Kind == AuthLoosened
		if c.Acknowledged(acks) != wantAcked {
			t.Errorf("%s: acknowledged %v, want %v (trailers %v)", c, !wantAcked, wantAcked, acks)
		}
		if !strings.HasPrefix(c.Pos, base+":proto/t/v1/a.proto:") && !strings.HasPrefix(c.Pos, src.Dir) {
			t.Errorf("position %q", c.Pos)
		}
	}
	// A second commit acknowledges the retyped field.
	run("commit", "-q", "--allow-empty", "-m", "count is int64\n\nAPI-Breaking: t.v1.Part.count")
	_, acks, err = Against(context.Background(), repo, base, hs, src)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range changes {
		if !c.Acknowledged(acks) {
			t.Errorf("%s not acknowledged by %v", c, acks)
		}
	}
	// A base without protos has nothing to compare.
	changes, _, err = Against(context.Background(), repo, empty, hs, src)
	if err != nil || len(changes) != 0 {
		t.Errorf("against a commit without protos: %v, %v", changes, err)
	}
}
