// Package k8sspec finds the OpenAPI document of a Kubernetes release offline-reproducibly: it is
// api/openapi-spec/swagger.json of the Go module k8s.io/kubernetes at that release, which the Go
// module proxy serves and the Go checksum database vouches for (`go mod download`), and whose
// module hash is pinned besides.
package k8sspec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
)

// Module is the Go module whose source holds the schemas.
const Module = "k8s.io/kubernetes"

// Swagger downloads (or finds in the module cache) k8s.io/kubernetes@version with the go
// command goBin, checks its module hash against sum (an "h1:" hash as go.sum has it; "" skips
// the comparison) and returns the path of its swagger.json.
func Swagger(goBin, version, sum string) (string, error) {
	cmd := exec.Command(goBin, "mod", "download", "-json", Module+"@"+version)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var info struct {
		Dir, Sum, Error string
	}
	if jerr := json.Unmarshal(out, &info); jerr == nil && info.Error != "" {
		return "", fmt.Errorf("go mod download %s@%s: %s", Module, version, info.Error)
	}
	if err != nil {
		return "", fmt.Errorf("go mod download %s@%s: %v: %s", Module, version, err, stderr.String())
	}
	if sum != "" && info.Sum != sum {
		return "", fmt.Errorf("%s@%s: module hash %s, want %s", Module, version, info.Sum, sum)
	}
	return filepath.Join(info.Dir, "api", "openapi-spec", "swagger.json"), nil
}
