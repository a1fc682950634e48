package config_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
)

// Every TLS section's files are loaded by Parse: a configuration naming a file that is missing,
// or a certificate with another's key, is refused before anything starts.
func TestTLSFilesAreChecked(t *testing.T) {
	ca := tlsfilestest.NewCA(t, "ca")
	dir := t.TempDir()
	f := tlsfilestest.WriteFiles(t, dir, ca, ca.Issue(t, "gateway"))
	otherKey := filepath.Join(dir, "other-key.pem")
	tlsfilestest.Write(t, otherKey, ca.Issue(t, "other").KeyPEM)
	missing := filepath.Join(dir, "missing.pem")
	const svc = "upstreams: {shop.order.v1.OrderService: {addresses: [127.0.0.1:1], tls: %s}}"
	for _, tc := range []struct {
		name, yaml, wantErr string
	}{
		{"listener", fmt.Sprintf("server: {tls: {cert_file: %q, key_file: %q, client_ca_file: %q}}", f.Cert, f.Key, f.CA), ""},
		{"listener without a key", fmt.Sprintf("server: {tls: {cert_file: %q}}", f.Cert), "server.tls: cert_file and key_file are both required"},
		{"listener with another's key", fmt.Sprintf("server: {tls: {cert_file: %q, key_file: %q}}", f.Cert, otherKey), "server.tls: server certificate: certificate and key"},
		{"listener with a missing client CA", fmt.Sprintf("server: {tls: {cert_file: %q, key_file: %q, client_ca_file: %q}}", f.Cert, f.Key, missing), "server.tls: server certificate: stat"},
		{"upstream mutual TLS", fmt.Sprintf(svc, fmt.Sprintf("{ca_file: %q, cert_file: %q, key_file: %q, server_name: order.shop}", f.CA, f.Cert, f.Key)), ""},
		{"upstream with the system roots", fmt.Sprintf(svc, "{enable: true}"), ""},
		{"upstream with a missing CA", fmt.Sprintf(svc, fmt.Sprintf("{ca_file: %q}", missing)), "upstreams.shop.order.v1.OrderService.tls: client TLS files: stat"},
		{"upstream with a certificate and no key", fmt.Sprintf(svc, fmt.Sprintf("{cert_file: %q}", f.Cert)), "upstreams.shop.order.v1.OrderService.tls: cert_file and key_file go together"},
		{"rate limiter's Redis", fmt.Sprintf("rate_limiting: {backend: redis, redis: {tls: {ca_file: %q}}}", f.CA), ""},
		{"rate limiter's Redis with a key as CA", fmt.Sprintf("rate_limiting: {backend: redis, redis: {tls: {ca_file: %q}}}", f.Key), "rate_limiting.redis.tls: client TLS files: CA bundle: no certificate"},
		{"abuse's Redis", fmt.Sprintf("abuse: {redis: {tls: {ca_file: %q}}}", missing), "abuse.redis.tls"},
		{"response cache's Redis", fmt.Sprintf("response_cache: {backend: redis, redis: {tls: {ca_file: %q}}}", missing), "response_cache.redis.tls"},
		{"an unknown key", "server: {tls: {certfile: x}}", "field certfile not found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tc.yaml))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("err = %v, want it to say %q", err, tc.wantErr)
			}
		})
	}
}
