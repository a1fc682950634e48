package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestCheckSubcommand: the repo's protos and example configuration pass; a throwaway proto
// tree with two colliding routes fails with one line naming both RPCs and their lines.
func TestCheckSubcommand(t *testing.T) {
	bad := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bad, "t", "v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "t", "v1", "a.proto"), []byte(`syntax = "proto3";

package t.v1;

import "google/api/annotations.proto";

message M {
  string id = 1;
}

service S {
  rpc A(M) returns (M) {
    option (google.api.http) = {get: "/v1/items/{id}"};
  }
  rpc B(M) returns (M) {
    option (google.api.http) = {get: "/v1/items/special"};
  }
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		want    string
	}{
		{"the repo's protos", []string{"-proto", "../../proto", "-import", "../../third_party/googleapis"}, false, ""},
		{"with the example configuration", []string{"-proto", "../../proto", "-import", "../../third_party/googleapis", "-config", "../../gateway/config/example.yaml"}, false, ""},
		{"colliding routes", []string{"-proto", bad, "-import", "../../proto,../../third_party/googleapis"}, true,
			bad + "/t/v1/a.proto:16: GET /v1/items/special can match the same requests as GET /v1/items/{id} (rpc t.v1.S/B vs rpc t.v1.S/A at " + bad + "/t/v1/a.proto:13)\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"check"}, tt.args...), &out, &errOut)
			if tt.wantErr != (err != nil) || (err != nil && !errors.Is(err, errProblems)) {
				t.Fatalf("err = %v (stderr %s), want an error %v", err, errOut.String(), tt.wantErr)
			}
			if out.String() != tt.want {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"check", "-proto", t.TempDir()}, &out, &errOut); err == nil || errors.Is(err, errProblems) || !strings.Contains(err.Error(), "no .proto files") {
		t.Errorf("an empty folder: %v", err)
	}
}

// TestCheckAgainst: -against REF reports a route moved since REF until a commit acknowledges it
// with an API-Breaking trailer.
func TestCheckAgainst(t *testing.T) {
	repo := t.TempDir()
	git := func(args ...string) string {
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
	write := func(path string) {
		t.Helper()
		p := filepath.Join(repo, "proto", "t", "v1", "a.proto")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		body := "syntax = \"proto3\";\n\npackage t.v1;\n\nimport \"google/api/annotations.proto\";\n\nmessage M {\n  string id = 1;\n}\n\n" +
			"service S {\n  rpc A(M) returns (M) {\n    option (google.api.http) = {get: \"" + path + "\"};\n  }\n}\n"
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	git("init", "-q", "-b", "main")
	write("/v1/items/{id}")
	git("add", ".")
	git("commit", "-q", "-m", "base")
	base := git("rev-parse", "HEAD")
	write("/v1/things/{id}")
	git("commit", "-q", "-am", "move the route")

	args := []string{"check", "-repo", repo, "-proto", filepath.Join(repo, "proto"), "-import", "../../proto,../../third_party/googleapis", "-against", base}
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, &out, &errOut)
	if !errors.Is(err, errProblems) || !strings.Contains(out.String(), "route moved or removed: rpc t.v1.S/A no longer serves GET /v1/items/{id}") ||
		!strings.Contains(out.String(), "API-Breaking: t.v1.S/A") {
		t.Fatalf("unacknowledged: %v\n%s%s", err, out.String(), errOut.String())
	}
	git("commit", "-q", "--allow-empty", "-m", "acknowledge\n\nAPI-Breaking: GET /v1/items/{id}")
	out.Reset()
	errOut.Reset()
	if err := run(context.Background(), args, &out, &errOut); err != nil || out.Len() != 0 || !strings.Contains(errOut.String(), "acknowledged: ") {
		t.Fatalf("acknowledged: %v\nstdout %s\nstderr %s", err, out.String(), errOut.String())
	}
}
