package config_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/internal/shopapi"
)

func TestExampleParses(t *testing.T) {
	cfg, err := config.Load("example.yaml")
	if err != nil {
		t.Fatalf("example.yaml: %v", err)
	}
	// The example gives every service the gateway serves an upstream, and names no other.
	if got, want := slices.Sorted(maps.Keys(cfg.Upstreams)), shopapi.Names(); !slices.Equal(got, want) {
		t.Errorf("upstreams = %v, want the registry's services %v", got, want)
	}
	o := cfg.Routes["shop.order.v1.OrderService/CreateOrder"]
	if o.Auth == nil || *o.Auth != "required" || len(o.Roles) != 2 || o.RateLimit == nil || o.RateLimit.Requests != 20 {
		t.Errorf("CreateOrder override decoded as %+v", o)
	}
	if cfg.Server.WriteTimeout != 0 || cfg.Limits.MaxBodyBytes != 1<<20 {
		t.Errorf("server/limits = %+v %+v", cfg.Server, cfg.Limits)
	}
}

func TestDefaults(t *testing.T) {
	cfg, err := config.Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := config.Config{
		Listen: config.DefaultListen,
		Server: config.Server{
			ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 30 * time.Second, IdleTimeout: 120 * time.Second,
			MaxHeaderBytes: 65536, MaxConnections: 10000, ShutdownTimeout: 20 * time.Second, WatchConfig: true, DrainDelay: 5 * time.Second,
		},
		Limits:   config.Limits{MaxBodyBytes: 1 << 20},
		Defaults: config.Defaults{Timeout: 10 * time.Second, RateLimit: policy.RateLimit{Requests: 100, Per: time.Minute, Burst: 100}},
	}
	if cfg.Listen != want.Listen || cfg.Server != want.Server || cfg.Limits != want.Limits || cfg.Defaults != want.Defaults {
		t.Errorf("defaults = %+v\nwant %+v", cfg, want)
	}
}

func TestOverrideFieldsDistinguishUnsetFromEmpty(t *testing.T) {
	cfg, err := config.Parse([]byte(`
routes:
  a.B/C: {roles: []}
  a.B/D: {timeout: 2s}
`))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Routes["a.B/C"].Roles; r == nil || len(r) != 0 {
		t.Errorf("roles: [] decoded as %#v, want empty non-nil (clears roles)", r)
	}
	if r := cfg.Routes["a.B/D"].Roles; r != nil {
		t.Errorf("absent roles decoded as %#v, want nil (inherit)", r)
	}
	if d := cfg.Routes["a.B/D"].Timeout; d == nil || *d != 2*time.Second {
		t.Errorf("timeout = %v", d)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string // substrings of the error
	}{
		{"unknown top-level key", "listen: 127.0.0.1:1\nlisten_addr: x\n", []string{"line 2", "listen_addr"}},
		{"unknown nested key", "server:\n  read_timeout: 1s\n  write_timout: 1s\n", []string{"line 3", "write_timout"}},
		{"unknown route key", "routes:\n  a.B/C: {rolez: [x]}\n", []string{"rolez"}},
		{"bad duration", "server:\n  read_timeout: fast\n", []string{"line 2", "fast"}},
		{"bad route duration", "routes:\n  a.B/C: {timeout: soon}\n", []string{"soon"}},
		{"wrong type", "limits: {max_body_bytes: lots}\n", []string{"lots"}},
		{"bad listen", "listen: nowhere\n", []string{"listen", "nowhere"}},
		{"upstream without addresses", "upstreams:\n  a.B: {addresses: []}\n", []string{"upstreams.a.B.addresses"}},
		{"bad upstream address", "upstreams:\n  a.B: {addresses: [localhost]}\n", []string{"upstreams.a.B.addresses", "localhost"}},
		{"upstream not a service name", "upstreams:\n  orders: {addresses: [\"a:1\"]}\n", []string{"orders"}},
		{"negative timeout", "defaults: {timeout: -1s}\n", []string{"defaults.timeout"}},
		{"negative max connections", "server: {max_connections: -1}\n", []string{"server.max_connections", "-1"}},
		{"zero route timeout", "routes:\n  a.B/C: {timeout: 0s}\n", []string{"routes.a.B/C", "timeout"}},
		{"bad auth mode", "routes:\n  a.B/C: {auth: maybe}\n", []string{"routes.a.B/C", "auth", "maybe"}},
		{"bad rate limit", "routes:\n  a.B/C: {rate_limit: {requests: 0, per: 1s}}\n", []string{"routes.a.B/C", "rate_limit", "requests"}},
		{"rate limit without period", "defaults: {rate_limit: {requests: 5}}\n", []string{"defaults.rate_limit", "per"}},
		{"fallback not JSON", "routes:\n  a.B/C: {fallback: {json_body: '{items'}}\n", []string{"routes.a.B/C", "fallback: json_body"}},
		{"fallback bad status", "routes:\n  a.B/C: {fallback: {http_status: 42, json_body: '{}'}}\n", []string{"fallback: http_status"}},
		{"bad cidr", "routes:\n  a.B/C: {allow_cidrs: [10.0.0.0/33]}\n", []string{"allow_cidrs", "10.0.0.0/33"}},
		{"bad deny cidr", "routes:\n  a.B/C: {deny_cidrs: [nope]}\n", []string{"deny_cidrs", "nope"}},
		{"bad delegate", "routes:\n  a.B/C: {delegates: [orders]}\n", []string{"delegates", `"orders"`}},
		{"negative cache ttl", "routes:\n  a.B/C: {cache: {ttl: -1s}}\n", []string{"a.B/C", "cache: ttl"}},
		{"bad response_cache backend", "response_cache: {backend: disk}\n", []string{"response_cache", `"disk"`}},
		{"heartbeat too short", "sse: {heartbeat: 1ms}\n", []string{"sse: heartbeat"}},
		{"redis addr and addrs", "rate_limiting: {backend: redis, redis: {addr: \"r:6379\", addrs: [\"a:6379\"]}}\n",
			[]string{"rate_limiting: redis.addr and addrs are both set"}},
		{"redis db in a cluster", "abuse: {redis: {addrs: [\"a:6379\", \"b:6379\"], db: 2}}\n", []string{"abuse: redis.db 2", "database 0 only"}},
		{"redis master_name without sentinels", "response_cache: {redis: {master_name: m}}\n", []string{"response_cache: redis.master_name needs addrs"}},
		{"redis seed without port", "rate_limiting: {redis: {addrs: [redis-0]}}\n", []string{`rate_limiting: redis.addrs[0]: "redis-0" is not host:port`}},
		{"redis password in the file", "rate_limiting: {redis: {password: x}}\n", []string{"password"}},
		{"bad failure mode", "rate_limiting: {redis: {failure_mode: maybe}}\n", []string{"rate_limiting: redis.failure_mode"}},
		{"cache key prefix with a hash tag", "response_cache: {redis: {key_prefix: \"{c}:\"}}\n", []string{"response_cache: redis.key_prefix"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.Parse([]byte(tt.yaml))
			if err == nil {
				t.Fatal("Parse accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestLoadNamesTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "gw.yaml")
	if err := os.WriteFile(path, []byte("bogus: 1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := config.Load(path)
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("Load error = %v, want it to name the file and the key", err)
	}
	if _, err := config.Load(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Fatal("Load of a missing file succeeded")
	}
}
