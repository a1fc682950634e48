package schema_test

import (
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/internal/spectest"
	"sigs.k8s.io/yaml"
)

func TestValidate(t *testing.T) {
	v := spectest.Validator(t)
	const deployment = `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web
          ports: [{name: http, containerPort: 8080}]
          readinessProbe: {httpGet: {path: /readyz, port: http}}
          livenessProbe: {grpc: {port: 8080}}
          resources: {requests: {cpu: 250m, memory: 1}}
`
	tests := []struct {
		name     string
		old, new string // replaced once in deployment; "" for the document as it is
		want     string // a substring of a problem expected; "" for no problem at all
	}{
		{"valid", "", "", ""},
		{"port by number", "port: http}", "port: 8080}", ""},
		{"unknown field", "replicas: 2", "replicas: 2\n  replica: 3", "spec.replica"},
		{"unknown field deep", "image: web", "image: web\n          imagePullPolicyy: Always", "imagePullPolicyy"},
		{"wrong type", "replicas: 2", "replicas: two", "spec.replicas in body must be of type integer"},
		{"int-or-string as a list", "port: http}", "port: [1]}", "port"},
		{"quantity as an object", "memory: 1}", "memory: {a: 1}}", "memory"},
		{"missing required", "- name: web\n          image: web", "- image: web", "name in body is required"},
		{"unknown kind", "kind: Deployment", "kind: Deploymnet", `kind "Deploymnet": not a kind`},
		{"old apiVersion", "apiVersion: apps/v1", "apiVersion: extensions/v1beta1", "not a kind of this Kubernetes release"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			doc := strings.Replace(deployment, tt.old, tt.new, 1)
			if tt.old != "" && doc == deployment {
				t.Fatalf("%q is not in the document", tt.old)
			}
			var obj map[string]any
			if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
				t.Fatal(err)
			}
			got := v.Validate(obj)
			if tt.want == "" {
				if len(got) > 0 {
					t.Fatalf("problems %q, want none", got)
				}
				return
			}
			if !strings.Contains(strings.Join(got, "\n"), tt.want) {
				t.Fatalf("problems %q, want one containing %q", got, tt.want)
			}
		})
	}
}
