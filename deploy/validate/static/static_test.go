package static_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/static"
)

func TestCheck(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "main.go")
	if err := os.WriteFile(src, []byte("package main\n\nimport \"net\"\n\nfunc main() { _, _ = net.LookupHost(\"localhost\") }\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	build := func(cgo string) string {
		out := filepath.Join(dir, "prog-cgo"+cgo)
		cmd := exec.Command("go", "build", "-o", out, src)
		cmd.Env = append(os.Environ(), "CGO_ENABLED="+cgo, "GOFLAGS=")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v: %s", err, b)
		}
		return out
	}
	tests := []struct {
		name, path string
		want       string // an error's substring; "" for static
	}{
		{"no cgo", build("0"), ""},
		{"cgo with net", build("1"), "dynamically linked"},
		{"not an executable", src, "bad magic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := static.Check(tt.path)
			if tt.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want one containing %q", err, tt.want)
			}
		})
	}
}
