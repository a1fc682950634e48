package ratelimit

import (
	"context"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/testredis"
	"github.com/acme/shopgate/internal/tlsfiles"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
)

// The Redis backend over TLS to a real redis-server requiring client certificates: it limits as
// over plaintext, and a rotated client certificate or CA bundle is what its next connection
// uses, with the same client (a refused handshake leaves no connection in the pool, so the next
// call dials again).
func TestRedisOverTLSWithRotation(t *testing.T) {
	serverCA, clientCA, strangerCA := tlsfilestest.NewCA(t, "redis server"), tlsfilestest.NewCA(t, "redis clients"), tlsfilestest.NewCA(t, "stranger")
	sf := tlsfilestest.WriteFiles(t, t.TempDir(), clientCA, serverCA.Issue(t, "redis"))
	srv := testredis.StartTLS(t, sf.Cert, sf.Key, sf.CA)
	limit := policy.RateLimit{Requests: 2, Per: time.Minute, Burst: 2}

	for _, tc := range []struct {
		name    string
		ca      *tlsfilestest.CA   // the client's CA bundle at first
		cert    tlsfilestest.Pair  // the client's certificate at first
		fixCA   *tlsfilestest.CA   // the bundle after the rotation
		fixCert *tlsfilestest.Pair // the certificate after the rotation
	}{
		{"a client certificate the server does not trust, then one it does", serverCA, strangerCA.Issue(t, "stranger"), nil, ptr(clientCA.Issue(t, "gateway"))},
		{"a CA bundle without the server's CA, then with it", strangerCA, clientCA.Issue(t, "gateway"), serverCA, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tlsfilestest.WriteFiles(t, t.TempDir(), tc.ca, tc.cert)
			r := NewRedis(RedisConfig{
				Config: redisclient.Config{Addr: srv.Addr, Timeout: 2 * time.Second, TLS: tlsfiles.ClientFiles{CAFile: f.CA, CertFile: f.Cert, KeyFile: f.Key}}, KeyPrefix: testredis.Prefix(t, "tls"),
			})
			defer r.Close()
			ctx := context.Background()
			if _, err := r.Allow(ctx, "k", limit); err == nil {
				t.Fatal("allowed before the rotation, want a refused handshake")
			}
			if tc.fixCA != nil {
				tlsfilestest.Write(t, f.CA, tc.fixCA.PEM)
			}
			if tc.fixCert != nil {
				tlsfilestest.Write(t, f.Cert, tc.fixCert.CertPEM)
				tlsfilestest.Write(t, f.Key, tc.fixCert.KeyPEM)
			}
			for i, want := range []bool{true, true, false} {
				res, err := r.Allow(ctx, "k", limit)
				if err != nil {
					t.Fatalf("call %d after the rotation: %v", i+1, err)
				}
				if res.Allowed != want {
					t.Errorf("call %d: allowed %v, want %v (2 per minute)", i+1, res.Allowed, want)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }
