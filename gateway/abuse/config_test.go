package abuse

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/acme/shopgate/gateway/redisclient"
)

// TestYAMLKeys decodes the doc's example section strictly (unknown keys fail), as the gateway's
// config file will hold it.
func TestYAMLKeys(t *testing.T) {
	t.Parallel()
	const doc = `
disabled: false
max_failures: 20
window: 2m
block_for: 10m
backend: redis
max_keys: 5000
redis:
  addr: redis.internal:6379
  username: gw
  db: 2
  key_prefix: "shop:abuse:"
  timeout: 50ms
  probe_interval: 2s
  sync_interval: 500ms
  pool_size: 4
`
	var cfg Config
	dec := yaml.NewDecoder(strings.NewReader(doc))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{
		MaxFailures: 20, Window: 2 * time.Minute, BlockFor: 10 * time.Minute, Backend: BackendRedis, MaxKeys: 5000,
		Redis: RedisConfig{
			Config: redisclient.Config{Addr: "redis.internal:6379", Username: "gw", DB: 2, Timeout: 50 * time.Millisecond, PoolSize: 4}, KeyPrefix: "shop:abuse:", ProbeInterval: 2 * time.Second, SyncInterval: 500 * time.Millisecond,
		},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("decoded %+v\nwant    %+v", cfg, want)
	}
	if _, err := cfg.withDefaults(); err != nil {
		t.Fatal(err)
	}
	var withPassword Config
	dec = yaml.NewDecoder(strings.NewReader("redis:\n  password: secret\n"))
	dec.KnownFields(true)
	if err := dec.Decode(&withPassword); err == nil {
		t.Fatal("redis.password accepted in the YAML; it must come from Options.RedisPassword")
	}
}

func TestConfigErrors(t *testing.T) {
	t.Parallel()
	_, err := New(Config{
		Backend:     "etcd",
		MaxFailures: -1,
		Window:      -time.Second,
		BlockFor:    time.Microsecond,
		MaxKeys:     -1,
		Redis:       RedisConfig{Config: redisclient.Config{Timeout: -1, DB: -1}, KeyPrefix: "a{b}"},
	}, Options{})
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "creating abuse detector: ") || strings.Count(msg, "creating abuse detector") != 1 {
		t.Fatalf("error %q, want one prefix", msg)
	}
	for _, want := range []string{"backend", "max_failures", "window", "block_for", "max_keys", "redis.key_prefix", "redis.timeout", "redis.db"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %s:\n%s", want, msg)
		}
	}
	if errors.Unwrap(err) == nil {
		t.Fatal("the problems are not wrapped")
	}
}

func TestDefaults(t *testing.T) {
	t.Parallel()
	d, err := New(Config{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	want := Limits{MaxFailures: 30, Window: time.Minute, BlockFor: 5 * time.Minute}
	if d.Limits() != want || d.disabled || d.redis != nil {
		t.Fatalf("defaults %+v disabled %v redis %v, want %+v, on, memory", d.Limits(), d.disabled, d.redis != nil, want)
	}
}
