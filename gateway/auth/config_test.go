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

func TestConfigValidation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	pub := writeFile(t, dir, "k.pem", []byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"))
	jwks := auth.Source{Issuer: issuer, Audiences: []string{audience}, JWKSURL: "https://idp.test/jwks.json"}
	tests := []struct {
		name    string
		cfg     auth.Config
		wantErr string
	}{
		{"zero value", auth.Config{}, ""},
		{"api key in clear", auth.Config{APIKeys: []auth.APIKey{{SHA256: apiKey, Subject: "s"}}}, "64 hex digits"},
		{"api key without subject", auth.Config{APIKeys: []auth.APIKey{{SHA256: sha256Hex(apiKey)}}}, "subject is required"},
		{"api key twice", auth.Config{APIKeys: []auth.APIKey{{SHA256: sha256Hex(apiKey), Subject: "a"}, {SHA256: strings.ToUpper(sha256Hex(apiKey)), Subject: "b"}}}, "twice"},
		{"source without issuer", auth.Config{Sources: []auth.Source{{Audiences: []string{audience}, JWKSURL: jwks.JWKSURL}}}, "issuer is required"},
		{"source without audience", auth.Config{Sources: []auth.Source{{Issuer: issuer, JWKSURL: jwks.JWKSURL}}}, "audiences are required"},
		{"source without keys", auth.Config{Sources: []auth.Source{{Issuer: issuer, Audiences: []string{audience}}}}, "exactly one of"},
		{"two issuers alike", auth.Config{Sources: []auth.Source{{Name: "x", Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: pub}}}, {Name: "y", Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: pub}}}}}, "configured twice"},
		{"jwks over plain http", auth.Config{Sources: []auth.Source{func() auth.Source { s := jwks; s.JWKSURL = "http://idp.test/jwks.json"; return s }()}}, "https is required"},
		{"HS256 on a jwks url", auth.Config{Sources: []auth.Source{func() auth.Source { s := jwks; s.Algorithms = []string{"HS256"}; return s }()}}, "needs secret_file"},
		{"alg none", auth.Config{Sources: []auth.Source{func() auth.Source { s := jwks; s.Algorithms = []string{"none"}; return s }()}}, "not supported"},
		{"unknown kid interval shorter than the fetch", auth.Config{Sources: []auth.Source{func() auth.Source {
			s := jwks
			s.UnknownKIDInterval, s.FetchTimeout = time.Second, 5*time.Second
			return s
		}()}}, "unknown_kid_interval"},
		{"several keys without kid", auth.Config{Sources: []auth.Source{{Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: pub}, {Path: pub}}}}}, "needs a kid"},
		{"leeway too large", auth.Config{Leeway: time.Hour}, "leeway"},
		{"unreadable key file", auth.Config{Sources: []auth.Source{{Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: dir + "/missing.pem"}}}}}, "reading key file"},
		{"empty PEM key", auth.Config{Sources: []auth.Source{{Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: pub}}}}}, "key file"},
		{"short secret", auth.Config{Sources: []auth.Source{{Issuer: hmacIss, Audiences: []string{audience}, SecretFile: writeFile(t, dir, "short", []byte("short"))}}}, "at least 32 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := auth.New(tt.cfg, auth.Options{Logger: quiet})
			if err == nil {
				_ = a.Close()
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("New: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("New error = %v, want one containing %q", err, tt.wantErr)
			case err != nil:
				checkPrefix(t, err)
			}
		})
	}
}

// TestConfigValidationReportsEveryProblem: New refuses a configuration with all of its
// problems at once, each on its own line, so an operator fixes them in one round.
func TestConfigValidationReportsEveryProblem(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		cfg  auth.Config
		want []string
	}{
		{"config, source and api key", auth.Config{
			Leeway:  time.Hour,
			Sources: []auth.Source{{Name: "idp", Audiences: []string{audience}, Algorithms: []string{"none"}}},
			APIKeys: []auth.APIKey{{SHA256: apiKey}},
		}, []string{
			"leeway 1h0m0s: want 0..10m",
			"source 0 (idp): issuer is required",
			"source 0 (idp): exactly one of jwks_url, jwks_file, key_files and secret_file is required",
			`source 0 (idp): algorithm "none" is not supported`,
			"api key 0: subject is required",
			"api key 0 (): sha256 must be 64 hex digits (the hash, never the key)",
		}},
		{"two sources", auth.Config{Sources: []auth.Source{
			{Issuer: issuer, JWKSURL: "http://idp.test/jwks.json"},
			{Issuer: issuer, Audiences: []string{audience}, KeyFiles: []auth.KeyFile{{Path: "a.pem"}, {Path: "b.pem", KID: "b"}}},
		}}, []string{
			"source 0 (https://idp.test): audiences are required and must not be empty strings",
			`source 0 (https://idp.test): jwks_url "http://idp.test/jwks.json": https is required (http only for loopback)`,
			"source 1 (https://idp.test): key_files: every key needs a kid when there are several",
			`source 1: issuer "https://idp.test" is configured twice`,
			`source 1: name "https://idp.test" is used twice (it namespaces the subjects)`,
		}},
		{"names and roles", auth.Config{
			Sources: []auth.Source{
				{Name: "a|b", Issuer: "i1", Audiences: []string{audience}, SecretFile: "s", AllowedRoles: []string{"x,y"}, PlainSubjects: true},
				{Name: "apikey", Issuer: "i2", Audiences: []string{audience}, SecretFile: "s", PlainSubjects: true},
			},
			APIKeys: []auth.APIKey{{SHA256: sha256Hex(apiKey), Subject: "s", Roles: []string{" admin"}}},
		}, []string{
			`source 0 (a|b): name "a|b": must not hold "|" nor be "apikey" (it namespaces subjects)`,
			`source 0 (a|b): allowed_roles: "x,y": want no ',' and no surrounding space`,
			`source 1 (apikey): name "apikey": must not hold "|" nor be "apikey" (it namespaces subjects)`,
			"plain_subjects: at most one source may set it, or two sources could share a customer",
			`api key 0 (s): role " admin": want no ',' and no surrounding space`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := auth.New(tt.cfg, auth.Options{Logger: quiet})
			if err == nil {
				t.Fatal("New accepted the configuration")
			}
			checkPrefix(t, err)
			lines := strings.Split(strings.TrimPrefix(err.Error(), "creating authenticator: "), "\n")
			if strings.Join(lines, "\n") != strings.Join(tt.want, "\n") {
				t.Fatalf("New error lines:\n%s\nwant:\n%s", strings.Join(lines, "\n"), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// checkPrefix fails unless err says once, at its start, which stage it comes from: the
// gateway adds nothing to it.
func checkPrefix(t *testing.T, err error) {
	t.Helper()
	const prefix = "creating authenticator: "
	if msg := err.Error(); !strings.HasPrefix(msg, prefix) || strings.Count(msg, "creating authenticator") != 1 {
		t.Fatalf("New error %q: want it to start with %q, once", msg, prefix)
	}
}
