package k8sspec_test

import (
	"os"
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/internal/spectest"
	"github.com/acme/shopgate/deploy/validate/k8sspec"
)

func TestSwagger(t *testing.T) {
	path, err := k8sspec.Swagger("go", spectest.Version, "")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(path, "k8s.io/kubernetes@"+spectest.Version+"/api/openapi-spec/swagger.json") {
		t.Fatalf("path %s", path)
	}
	if fi, err := os.Stat(path); err != nil || fi.Size() < 1<<20 {
		t.Fatalf("%s: %v, size %d; want a document of megabytes", path, err, fi.Size())
	}
	_, err = k8sspec.Swagger("go", spectest.Version, "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=")
	if err == nil || !strings.Contains(err.Error(), "module hash h1:") {
		t.Fatalf("error %v, want a module hash mismatch", err)
	}
	_, err = k8sspec.Swagger("no-such-go-command", spectest.Version, "")
	if err == nil || !strings.Contains(err.Error(), "go mod download") {
		t.Fatalf("error %v, want the go command's failure", err)
	}
}
