package apicheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyExampleIsBufFormatted: the example in gateway.v1.Policy's comment, the one teams
// copy, is written as `buf format` writes it (and compiles): it is put into a throwaway proto,
// at the indentation of a method's option, and `buf format -d --exit-code` must find nothing.
// It needs the pinned buf (make tools); it skips without it, and fails under CI=true.
func TestPolicyExampleIsBufFormatted(t *testing.T) {
	bufs, _ := filepath.Glob("../../.tools/buf-*/buf")
	if len(bufs) == 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("the pinned buf is missing: run `make tools`")
		}
		t.Skip("the pinned buf is missing: run `make tools`")
	}
	src, err := os.ReadFile(filepath.Join(repoProto, "gateway", "v1", "policy.proto"))
	if err != nil {
		t.Fatal(err)
	}
	var example []string
	in := false
	for _, line := range strings.Split(string(src), "\n") {
		text, isComment := strings.CutPrefix(line, "//")
		if !isComment {
			in = false
			continue
		}
		if strings.Contains(text, "option (gateway.v1.policy) = {") {
			in = true
			example = example[:0]
		}
		if in {
			// "//   option ..." in the comment: the example's own indentation starts after "// ".
			example = append(example, "    "+strings.TrimPrefix(text, "   "))
			if strings.TrimSpace(text) == "};" {
				break
			}
		}
	}
	if len(example) < 3 || strings.TrimSpace(example[len(example)-1]) != "};" {
		t.Fatalf("no policy example found in policy.proto's comment: %q", example)
	}
	dir := writeProtos(t, map[string]string{"t/v1/example.proto": `syntax = "proto3";

package t.v1;

import "gateway/v1/policy.proto";

option (gateway.v1.roles) = "admin";

message M {}

service S {
  rpc Do(M) returns (M) {
` + strings.Join(example, "\n") + `
  }
}
`})
	// It compiles, and says nothing Check refuses but the missing route.
	if probs := Check(compileDir(t, dir)); len(probs) != 1 || !strings.Contains(probs[0].Message, "no google.api.http route") {
		t.Errorf("the example: %s", render(probs))
	}
	cmd := exec.Command(bufs[0], "format", "-d", "--exit-code", filepath.Join(dir, "t/v1/example.proto"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("buf format would rewrite the example in policy.proto's comment (%v):\n%s", err, out)
	}
}
