// Package check validates one rendered kustomization (the output of `kubectl kustomize`): every
// object against the Kubernetes OpenAPI schemas (package schema), strictly decoded into its
// typed API object (package typed), the set against the stack's rules (package rules), and the
// gateway's ConfigMap YAML by the gateway itself (`gateway check -config`).
package check

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/acme/shopgate/deploy/validate/manifest"
	"github.com/acme/shopgate/deploy/validate/rules"
	"github.com/acme/shopgate/deploy/validate/schema"
	"github.com/acme/shopgate/deploy/validate/typed"
	"k8s.io/apimachinery/pkg/runtime"
)

// Config is what Rendered checks with.
type Config struct {
	// Schema holds the Kubernetes release's schemas. Required.
	Schema *schema.Validator
	// Rules are the stack's facts (see rules.Options for the defaults).
	Rules rules.Options
	// GatewayCheck checks the gateway's YAML; nil skips that check (Result says so).
	GatewayCheck func(yaml []byte) error
	// Container checks one of the stack's containers (its image and arguments, see package
	// images); nil skips that check.
	Container func(image string, args []string) error
}

// Result is what Rendered found.
type Result struct {
	Objects  int      // documents read
	Problems []string // each "Kind/name: message", or about the stream as a whole
	// GatewayChecked is false when the gateway's YAML was not checked (no GatewayCheck, or it
	// could not be found: Problems says why).
	GatewayChecked bool
	// ContainersChecked counts the containers Config.Container checked.
	ContainersChecked int
}

// Rendered checks the YAML stream data.
func Rendered(data []byte, cfg Config) (Result, error) {
	objs, err := manifest.Read(bytes.NewReader(data))
	if err != nil {
		return Result{}, err
	}
	res := Result{Objects: len(objs)}
	var typedObjs []runtime.Object
	for _, o := range objs {
		for _, p := range cfg.Schema.Validate(o.Map) {
			res.Problems = append(res.Problems, o.ID()+": "+p)
		}
		t, err := typed.Decode(o.JSON)
		if err != nil {
			res.Problems = append(res.Problems, o.ID()+": "+err.Error())
			continue
		}
		typedObjs = append(typedObjs, t)
	}
	res.Problems = append(res.Problems, rules.Check(typedObjs, cfg.Rules)...)
	if cfg.Container != nil {
		for _, c := range rules.OwnContainers(typedObjs) {
			if err := cfg.Container(c.Image, c.Args); err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("%s: container %q: %v", c.Workload, c.Name, err))
			}
			res.ContainersChecked++
		}
	}
	if cfg.GatewayCheck != nil {
		y, cm, err := rules.GatewayConfig(typedObjs, cfg.Rules)
		switch {
		case err != nil:
			res.Problems = append(res.Problems, "gateway configuration: "+err.Error())
		default:
			if err := cfg.GatewayCheck(y); err != nil {
				res.Problems = append(res.Problems, fmt.Sprintf("ConfigMap/%s: gateway check: %v", cm, err))
			}
			res.GatewayChecked = true
		}
	}
	return res, nil
}

// GatewayCheck returns a Config.GatewayCheck that runs `<gateway> check -config FILE` in the
// repository repo (the protos the routes are checked against are there), FILE holding the YAML.
func GatewayCheck(gateway, repo string) func([]byte) error {
	if abs, err := filepath.Abs(gateway); err == nil && strings.ContainsRune(gateway, filepath.Separator) {
		gateway = abs // it runs in repo
	}
	return func(y []byte) error {
		dir, err := os.MkdirTemp("", "check-deploy-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		file := filepath.Join(dir, "gateway.yaml")
		if err := os.WriteFile(file, y, 0o600); err != nil {
			return err
		}
		cmd := exec.Command(gateway, "check", "-config", file)
		cmd.Dir = repo
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%v: %s", err, strings.TrimSpace(strings.ReplaceAll(string(out), file, "gateway.yaml")))
		}
		return nil
	}
}
