package config_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/config"
)

func TestParseEnv(t *testing.T) {
	tests := []struct {
		name  string
		file  string
		env   []string
		check func(*config.Config) bool
	}{
		{"no override: the file", "listen: 127.0.0.1:9", []string{"HOME=/"},
			func(c *config.Config) bool { return c.Listen == "127.0.0.1:9" }},
		{"an override wins over the file", "listen: 127.0.0.1:9", []string{"GATEWAY__LISTEN=127.0.0.1:10"},
			func(c *config.Config) bool { return c.Listen == "127.0.0.1:10" }},
		{"a duration, an integer, a bool pointer, nested", "",
			[]string{"GATEWAY__SERVER__READ_TIMEOUT=7s", "GATEWAY__LIMITS__MAX_BODY_BYTES=2048", "GATEWAY__DOCS__ENABLED=false"},
			func(c *config.Config) bool {
				return c.Server.ReadTimeout == 7*time.Second && c.Limits.MaxBodyBytes == 2048 && !c.Docs.On()
			}},
		{"the policy stages' sections", "",
			[]string{"GATEWAY__RATE_LIMITING__BACKEND=redis", "GATEWAY__RATE_LIMITING__REDIS__ADDR=10.0.0.5:6379"},
			func(c *config.Config) bool {
				return c.RateLimiting.Backend == "redis" && c.RateLimiting.Redis.Addr == "10.0.0.5:6379"
			}},
		{"a Redis Cluster's seeds and a sentinel master, comma-separated", "",
			[]string{"GATEWAY__RATE_LIMITING__REDIS__ADDRS=10.0.0.5:6379,10.0.0.6:6379", "GATEWAY__ABUSE__REDIS__MASTER_NAME=shopgate",
				"GATEWAY__ABUSE__REDIS__ADDRS=10.0.0.7:26379"},
			func(c *config.Config) bool {
				return strings.Join(c.RateLimiting.Redis.Addrs, " ") == "10.0.0.5:6379 10.0.0.6:6379" &&
					c.Abuse.Redis.MasterName == "shopgate" && strings.Join(c.Abuse.Redis.Addrs, " ") == "10.0.0.7:26379"
			}},
		{"a route's key, loosely", "routes: {shop.order.v1.OrderService: {timeout: 3s}}",
			[]string{"GATEWAY__ROUTES__SHOP_ORDER_V1_ORDERSERVICE__TIMEOUT=4s"},
			func(c *config.Config) bool { return *c.Routes["shop.order.v1.OrderService"].Timeout == 4*time.Second }},
		{"an upstream's addresses, comma-separated, into an upstream the file lacks", "",
			[]string{"GATEWAY__UPSTREAMS__shop.order.v1.OrderService__ADDRESSES=10.0.0.1:9101,10.0.0.2:9101"},
			func(c *config.Config) bool {
				return strings.Join(c.Upstreams["shop.order.v1.OrderService"].Addresses, " ") == "10.0.0.1:9101 10.0.0.2:9101"
			}},
		{"CORS origins", "", []string{"GATEWAY__CORS__ALLOWED_ORIGINS=https://shop.example"},
			func(c *config.Config) bool { return strings.Join(c.CORS.AllowedOrigins, " ") == "https://shop.example" }},
		{"an empty value is the default", "server: {read_timeout: 3s}", []string{"GATEWAY__SERVER__READ_TIMEOUT="},
			func(c *config.Config) bool { return c.Server.ReadTimeout == config.DefaultReadTimeout }},
		{"the older GATEWAY_REDIS_PASSWORD is not an override", "", []string{"GATEWAY_REDIS_PASSWORD=s3cret"},
			func(c *config.Config) bool { return c.RateLimiting.Redis.Password == "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.ParseEnv([]byte(tt.file), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Errorf("wrong configuration: %+v", c)
			}
		})
	}
}

func TestParseEnvRefuses(t *testing.T) {
	tests := []struct {
		name string
		file string
		env  string
		want []string // in the error
	}{
		{"a typo", "", "GATEWAY__SERVER__READ_TIMEOTU=5s", []string{"GATEWAY__SERVER__READ_TIMEOTU", `"read_timeotu"`}},
		{"a section", "", "GATEWAY__SERVER=5s", []string{"GATEWAY__SERVER", "section"}},
		{"a list of sections", "", "GATEWAY__AUTH__SOURCES=x", []string{"GATEWAY__AUTH__SOURCES", "list of sections"}},
		{"a secret the file never holds", "", "GATEWAY__RATE_LIMITING__REDIS__PASSWORD=x", []string{"GATEWAY__RATE_LIMITING__REDIS__PASSWORD"}},
		{"a value of the wrong type", "", "GATEWAY__SERVER__READ_TIMEOUT=fast", []string{"GATEWAY__SERVER__READ_TIMEOUT", `"fast"`}},
		{"validation applies to overrides", "", "GATEWAY__SERVER__MAX_CONNECTIONS=-1", []string{"server.max_connections: must not be negative"}},
		{"an upstream name is validated", "", "GATEWAY__UPSTREAMS__ORDERS__ADDRESSES=127.0.0.1:1", []string{`"ORDERS" is not a full gRPC service name`}},
		{"the file's own errors keep their line", "server:\n  nope: 1\n", "GATEWAY__LISTEN=x", []string{"line 2", "nope"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := config.ParseEnv([]byte(tt.file), []string{tt.env})
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestLoadEnvExample overrides settings of example.yaml, the complete file.
func TestLoadEnvExample(t *testing.T) {
	c, err := config.LoadEnv("example.yaml", []string{"GATEWAY__ROUTES__SHOP_ORDER_V1_ORDERSERVICE_CREATEORDER__RATE_LIMIT__REQUESTS=7"})
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Routes["shop.order.v1.OrderService/CreateOrder"].RateLimit; got.Requests != 7 || got.Burst != 5 {
		t.Errorf("CreateOrder rate limit %+v, want 7 requests, burst 5 (the file's)", got)
	}
	path := filepath.Join(t.TempDir(), "missing.yaml")
	if _, err := config.LoadEnv(path, nil); err == nil || !os.IsNotExist(errUnwrap(err)) {
		t.Errorf("missing file: %v", err)
	}
}

func errUnwrap(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok || u.Unwrap() == nil {
			return err
		}
		err = u.Unwrap()
	}
}

func TestWatchConfig(t *testing.T) {
	tests := []struct {
		file string
		env  []string
		want bool
	}{
		{"", nil, true},
		{"server: {watch_config: true}", nil, true},
		{"server: {watch_config: false}", nil, false},
		{"", []string{"GATEWAY__SERVER__WATCH_CONFIG=false"}, false},
		{"server: {watch_config: false}", []string{"GATEWAY__SERVER__WATCH_CONFIG=true"}, true},
		{"server: {watch_config: false}", []string{"GATEWAY__SERVER__WATCH_CONFIG="}, true}, // empty: the default
	}
	for _, tt := range tests {
		t.Run(tt.file+strings.Join(tt.env, " "), func(t *testing.T) {
			c, err := config.ParseEnv([]byte(tt.file), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			if c.Server.WatchConfig != tt.want {
				t.Errorf("watch_config %v, want %v", c.Server.WatchConfig, tt.want)
			}
		})
	}
}

// BenchmarkParseEnv is the cost of a load (start, each reload) of example.yaml without and with
// overrides.
func BenchmarkParseEnv(b *testing.B) {
	data, err := os.ReadFile("example.yaml")
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct {
		name string
		env  []string
	}{
		{"none", []string{"HOME=/root", "PATH=/bin"}},
		{"three", []string{"GATEWAY__SERVER__READ_TIMEOUT=10s", "GATEWAY__CORS__ALLOWED_ORIGINS=https://a,https://b",
			"GATEWAY__ROUTES__SHOP_ORDER_V1_ORDERSERVICE__TIMEOUT=4s"}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := config.ParseEnv(data, bb.env); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
