package images_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/deploy/validate/images"
	"github.com/acme/shopgate/deploy/validate/internal/spectest"
)

func TestName(t *testing.T) {
	for in, want := range map[string]string{
		"shopgate/orderd":     "orderd",
		"shopgate/orderd:dev": "orderd",
		"registry.example.com:5000/shopgate/gateway:0.1": "gateway",
		"gateway@sha256:0123":                            "gateway",
		"nats:2.11.9-alpine":                             "nats",
	} {
		if got := images.Name(in); got != want {
			t.Errorf("Name(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCheck(t *testing.T) {
	gw, err := spectest.BuildGateway(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c := images.Checker{Targets: []string{"build", "runtime", "gateway"}, Binaries: filepath.Dir(gw)}
	tests := []struct {
		name, image string
		args        []string
		want        string // an error's substring; "" for none
	}{
		{"the manifests' arguments", "registry.example.com/shopgate/gateway:0.1.0", []string{"-config", "/etc/shopgate/config/gateway.yaml"}, ""},
		{"no arguments", "shopgate/gateway", nil, ""},
		{"a misspelt flag", "shopgate/gateway", []string{"-confg", "/etc/gateway.yaml"}, `gateway does not take its arguments ["-confg" "/etc/gateway.yaml"]`},
		{"an image the Dockerfile does not build", "shopgate/gatewayd:dev", nil, `the Dockerfile has no target "gatewayd"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(tt.image, tt.args)
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
