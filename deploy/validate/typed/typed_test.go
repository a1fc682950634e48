package typed_test

import (
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/typed"
	appsv1 "k8s.io/api/apps/v1"
	policyv1 "k8s.io/api/policy/v1"
)

func TestDecode(t *testing.T) {
	tests := []struct {
		name, doc string
		want      string // an error's substring; "" for success
	}{
		{"deployment", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":2}}`, ""},
		{"budget", `{"apiVersion":"policy/v1","kind":"PodDisruptionBudget","metadata":{"name":"a"},"spec":{"minAvailable":1}}`, ""},
		{"unknown field", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replica":2}}`, `unknown field "spec.replica"`},
		{"duplicate field", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":2,"replicas":3}}`, `duplicate field "spec.replicas"`},
		{"wrong type", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"a"},"spec":{"replicas":"2"}}`, "replicas"},
		{"unknown kind", `{"apiVersion":"apps/v1","kind":"Deploymnet","metadata":{"name":"a"}}`, "no kind"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj, err := typed.Decode([]byte(tt.doc))
			if tt.want != "" {
				if err == nil || !strings.Contains(err.Error(), tt.want) {
					t.Fatalf("error %v, want one containing %q", err, tt.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			switch o := obj.(type) {
			case *appsv1.Deployment:
				if *o.Spec.Replicas != 2 {
					t.Fatalf("replicas %d, want 2", *o.Spec.Replicas)
				}
			case *policyv1.PodDisruptionBudget:
				if o.Spec.MinAvailable.IntValue() != 1 {
					t.Fatalf("minAvailable %v, want 1", o.Spec.MinAvailable)
				}
			default:
				t.Fatalf("decoded a %T", obj)
			}
		})
	}
}
