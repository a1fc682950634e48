package redisclient_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"go.yaml.in/yaml/v3"

	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/tlsfiles"
)

func TestValidateAndMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		cfg      redisclient.Config
		wantMode string
		wantErrs []string // each in the error; none: valid
	}{
		{"zero: the backend's default node", redisclient.Config{}, redisclient.ModeSingle, nil},
		{"one node", redisclient.Config{Addr: "redis:6379", DB: 3}, redisclient.ModeSingle, nil},
		{"cluster", redisclient.Config{Addrs: []string{"a:6379", "b:6379"}}, redisclient.ModeCluster, nil},
		{"cluster of one seed", redisclient.Config{Addrs: []string{"a:6379"}}, redisclient.ModeCluster, nil},
		{"sentinel", redisclient.Config{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "m", DB: 2, SentinelUsername: "s"}, redisclient.ModeSentinel, nil},
		{"addr and addrs", redisclient.Config{Addr: "a:1", Addrs: []string{"b:1"}}, redisclient.ModeCluster, []string{"addr and addrs are both set"}},
		{"db in a cluster", redisclient.Config{Addrs: []string{"a:1"}, DB: 1}, redisclient.ModeCluster, []string{"db 1: a Redis Cluster has database 0 only"}},
		{"master_name alone", redisclient.Config{MasterName: "m"}, redisclient.ModeSentinel, []string{"master_name needs addrs"}},
		{"sentinel_username without sentinels", redisclient.Config{Addrs: []string{"a:1"}, SentinelUsername: "s"}, redisclient.ModeCluster, []string{"sentinel_username is set without master_name"}},
		{"every bad value at once", redisclient.Config{Addr: "nohost", DB: -1, Timeout: -1, PoolSize: -2},
			redisclient.ModeSingle, []string{`addr: "nohost" is not host:port`, "db -1 is negative", "timeout -1ns is negative", "pool_size -2 is negative"}},
		{"bad seed", redisclient.Config{Addrs: []string{"a:1", ":2", "c:99999"}}, redisclient.ModeCluster, []string{`addrs[1]: ":2"`, `addrs[2]: "c:99999"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := tt.cfg.Mode(); got != tt.wantMode {
				t.Errorf("Mode() = %q, want %q", got, tt.wantMode)
			}
			err := tt.cfg.Validate()
			if len(tt.wantErrs) == 0 {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want %q", tt.wantErrs)
			}
			for _, w := range tt.wantErrs {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate() = %v, want it to say %q", err, w)
				}
			}
		})
	}
}

// TestYAMLInline: the keys sit beside the embedding section's own, strictly decoded, and the
// passwords are never read from the YAML.
func TestYAMLInline(t *testing.T) {
	t.Parallel()
	type section struct {
		redisclient.Config `yaml:",inline"`
		KeyPrefix          string `yaml:"key_prefix"`
	}
	const doc = `
addrs: [s1:26379, s2:26379]
master_name: shopgate
username: gw
sentinel_username: watcher
db: 2
timeout: 150ms
pool_size: 8
tls: {ca_file: ca.pem}
key_prefix: "p:"
`
	var got section
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	want := redisclient.Config{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "shopgate", Username: "gw", SentinelUsername: "watcher",
		DB: 2, Timeout: 150 * time.Millisecond, PoolSize: 8, TLS: tlsfiles.ClientFiles{CAFile: "ca.pem"}}
	if got.KeyPrefix != "p:" || got.Mode() != redisclient.ModeSentinel || got.Where() != "sentinel shopgate [s1:26379 s2:26379]" ||
		strings.Join(got.Addrs, ",") != strings.Join(want.Addrs, ",") || got.MasterName != want.MasterName || got.DB != want.DB ||
		got.Timeout != want.Timeout || got.PoolSize != want.PoolSize || got.TLS != want.TLS || got.SentinelUsername != want.SentinelUsername {
		t.Fatalf("decoded %+v, want %+v", got, want)
	}
	for _, secret := range []string{"password: x", "sentinel_password: x"} {
		dec := yaml.NewDecoder(strings.NewReader(secret))
		dec.KnownFields(true)
		if err := dec.Decode(&section{}); err == nil {
			t.Errorf("%q accepted in the YAML; passwords come from the environment", secret)
		}
	}
}

// TestNewClientKinds: New builds a Client for one node or Sentinel and a ClusterClient for
// addrs, without a round trip (nothing listens: the gateway starts while Redis is down), and a
// call then fails within about one Timeout.
func TestNewClientKinds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		cfg     redisclient.Config
		cluster bool
	}{
		{redisclient.Config{Addr: "127.0.0.1:1"}, false},
		{redisclient.Config{Addrs: []string{"127.0.0.1:1"}}, true},
		{redisclient.Config{Addrs: []string{"127.0.0.1:1", "127.0.0.1:2"}}, true},
		{redisclient.Config{Addrs: []string{"127.0.0.1:1"}, MasterName: "m"}, false},
	} {
		t.Run(tt.cfg.Where(), func(t *testing.T) {
			t.Parallel()
			tt.cfg.Timeout = 200 * time.Millisecond
			c := redisclient.New(tt.cfg)
			defer c.Close()
			if _, isCluster := c.(*redis.ClusterClient); isCluster != tt.cluster {
				t.Fatalf("client %T, want cluster %v", c, tt.cluster)
			}
			start := time.Now()
			if err := c.Ping(context.Background()).Err(); err == nil {
				t.Fatal("ping answered with nothing listening")
			}
			if took := time.Since(start); took > time.Second {
				t.Fatalf("a ping with nothing listening took %v, want about one timeout at most", took)
			}
		})
	}
}
