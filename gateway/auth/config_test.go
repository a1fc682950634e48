package auth_test

import (
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/shopgate/gateway/auth"
)

// TestConfigYAML decodes the `auth:` section of doc.go strictly: the documented names are the
// real ones.
func TestConfigYAML(t *testing.T) {
	t.Parallel()
	const doc = `
leeway: 30s
max_token_bytes: 8192
cache:
  disabled: false
  size: 10000
  max_ttl: 5m
sources:
  - name: idp
    issuer: https://idp.example.com/
    audiences: [shop-api]
    algorithms: [RS256, ES256, EdDSA]
    jwks_url: https://idp.example.com/jwks.json
    refresh_interval: 1h
    unknown_kid_interval: 5m
    fetch_timeout: 10s
    max_jwks_bytes: 1048576
    roles_claim: roles
    scope_claim: ""
  - issuer: shop-dev
    audiences: [shop-api]
    jwks_file: ./data/devkeys/jwks.json
api_keys:
  - name: billing-batch
    sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    subject: svc-billing
    roles: [admin]
`
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{"documented example", doc, ""},
		{"empty section", "{}", ""},
		{"a key in clear is not a field", "api_keys: [{key: sk_live_1, subject: s}]", "field key not found"},
		{"misspelled field", "sources: [{issuer: x, audience: [a], jwks_file: f}]", "field audience not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var cfg auth.Config
			dec := yaml.NewDecoder(strings.NewReader(tt.yaml))
			dec.KnownFields(true)
			err := dec.Decode(&cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Decode error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.yaml != doc {
				return
			}
			s := cfg.Sources[0]
			if cfg.Leeway != 30*time.Second || cfg.Cache.MaxTTL != 5*time.Minute || s.RefreshInterval != time.Hour ||
				s.FetchTimeout != 10*time.Second || s.MaxJWKSBytes != 1<<20 || len(cfg.APIKeys[0].Roles) != 1 ||
				cfg.Sources[1].JWKSFile != "./data/devkeys/jwks.json" {
				t.Fatalf("decoded %+v", cfg)
			}
		})
	}
}
