package main

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/internal/fixture"
	"github.com/acme/shopgate/deploy/validate/internal/spectest"
)

func TestRun(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("good.yaml", fixture.Dev(t))
	bad := write("bad.yaml", fixture.Dev(t, fixture.Edit{ID: "Deployment/gateway", Old: "replicas: 2", New: "replicas: 1"}))
	dockerfile := filepath.Join(spectest.Repo(), "Dockerfile")
	badDockerfile := write("Dockerfile", []byte("FROM scratch\nENTRYPOINT /app\n"))
	openapi := spectest.SwaggerPath(t)
	ext := "-external=" + strings.Join(fixture.External, ",")
	tests := []struct {
		name       string
		args       []string
		err        error    // nil, errProblems, or errAny
		stdout     []string // substrings of the problem lines, one each
		stderrHave string
	}{
		{"manifests and Dockerfile", []string{"-openapi", openapi, ext, "-dockerfile", dockerfile, good}, nil, nil,
			"22 objects against Kubernetes " + openapi + " schemas (strict), typed decoding, the stack's rules; gateway YAML not checked; 0 containers' Dockerfile targets and arguments checked; 0 problems"},
		{"a broken manifest", []string{"-openapi", openapi, ext, good, bad}, errProblems,
			[]string{bad + ": Deployment/gateway: 1 replicas", bad + ": PodDisruptionBudget/gateway: minAvailable 1 with 1 replicas"}, "bad.yaml: 22 objects"},
		{"a Secret not declared", []string{"-openapi", openapi, good}, errProblems,
			[]string{`Deployment/gateway: volume "passport-keys": Secret "passport-keys" is not declared external`,
				`Deployment/inventory: volume "passport-jwks": ConfigMap "passport-jwks" is neither rendered nor external`,
				`Deployment/order: volume "passport-jwks"`, `Deployment/payment: volume "passport-jwks"`, `Deployment/storefront: volume "passport-jwks"`}, "5 problems"},
		{"a broken Dockerfile", []string{"-dockerfile", badDockerfile}, errProblems,
			[]string{badDockerfile + ": line 2: JSONArgsRecommended"}, "BuildKit lint (all rules, experimental included): 1 problems"},
		{"no schemas", []string{good}, errAny, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := run(tt.args, &stdout, &stderr)
			switch {
			case tt.err == nil && err != nil, tt.err == errProblems && !errors.Is(err, errProblems), tt.err == errAny && (err == nil || errors.Is(err, errProblems)):
				t.Fatalf("error %v, want %v; stdout:\n%s\nstderr:\n%s", err, tt.err, &stdout, &stderr)
			}
			lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
			if stdout.Len() == 0 {
				lines = nil
			}
			if len(lines) != len(tt.stdout) {
				t.Fatalf("stdout:\n%s\nwant %d lines: %q", &stdout, len(tt.stdout), tt.stdout)
			}
			for i, l := range lines {
				if !strings.Contains(l, tt.stdout[i]) {
					t.Errorf("line %d: %q, want it to contain %q", i, l, tt.stdout[i])
				}
			}
			if !strings.Contains(stderr.String(), tt.stderrHave) {
				t.Errorf("stderr:\n%s\nwant it to contain %q", &stderr, tt.stderrHave)
			}
		})
	}
}

var errAny = errors.New("any error but errProblems")
