// Package spectest gives tests the Kubernetes OpenAPI document and the repository's files.
package spectest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/acme/shopgate/deploy/validate/k8sspec"
	"github.com/acme/shopgate/deploy/validate/schema"
)

// Version is the Kubernetes release the tests use; $K8S_VERSION (which `make test-deploy`
// sets from the Makefile's K8S_VERSION) overrides it.
const Version = "v1.37.2"

var (
	once sync.Once
	val  *schema.Validator
	path string
	err  error
)

// Validator returns the schemas of the release, loaded once per test binary.
func Validator(t testing.TB) *schema.Validator {
	t.Helper()
	once.Do(func() {
		v := Version
		if e := os.Getenv("K8S_VERSION"); e != "" {
			v = e
		}
		if path, err = k8sspec.Swagger("go", v, os.Getenv("K8S_MODULE_SUM")); err == nil {
			val, err = schema.Load(path)
		}
	})
	if err != nil {
		t.Fatalf("the Kubernetes OpenAPI document (go mod download through the module proxy or its cache): %v", err)
	}
	return val
}

// SwaggerPath is the file Validator loaded.
func SwaggerPath(t testing.TB) string {
	Validator(t)
	return path
}

// Repo is the repository's root (this module is deploy/validate in it).
func Repo() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "..")
}

// Testdata reads deploy/validate/testdata/name.
func Testdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(Repo(), "deploy", "validate", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// BuildGateway builds the repository's gateway into dir and returns its path.
func BuildGateway(dir string) (string, error) {
	out := filepath.Join(dir, "gateway")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/gateway")
	cmd.Dir = Repo()
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/gateway: %v: %s", err, b)
	}
	return out, nil
}
