package main

import (
	"bytes"
	"context"
	"errors"
	"os"
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
