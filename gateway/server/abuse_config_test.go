package server

import (
	"reflect"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/abuse"
	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/ratelimit"
	"github.com/acme/shopgate/gateway/redisclient"
)

// TestAbuseConfigFollowsTheRateLimiter: a gateway whose limits are in Redis keeps its blocks in
// the same Redis, whatever its shape (node, cluster, sentinel), with the passwords but its own
// timeout and pool; an abuse section naming its own Redis keeps it.
func TestAbuseConfigFollowsTheRateLimiter(t *testing.T) {
	t.Parallel()
	sentinel := redisclient.Config{Addrs: []string{"s1:26379", "s2:26379"}, MasterName: "shopgate", Username: "gw", Password: "pw",
		SentinelPassword: "spw", DB: 1, Timeout: time.Second, PoolSize: 3}
	tests := []struct {
		name  string
		rl    ratelimit.Config
		abuse abuse.Config
		want  abuse.Config
	}{
		{"memory limits: abuse as configured", ratelimit.Config{}, abuse.Config{MaxFailures: 5}, abuse.Config{MaxFailures: 5}},
		{"the rate limiter's sentinel, abuse's own timeout", ratelimit.Config{Backend: ratelimit.BackendRedis, Redis: ratelimit.RedisConfig{Config: sentinel}},
			abuse.Config{Redis: abuse.RedisConfig{Config: redisclient.Config{Timeout: 50 * time.Millisecond}}},
			abuse.Config{Backend: abuse.BackendRedis, Redis: abuse.RedisConfig{Config: redisclient.Config{
				Addrs: sentinel.Addrs, MasterName: "shopgate", Username: "gw", Password: "pw", SentinelPassword: "spw", DB: 1, Timeout: 50 * time.Millisecond,
			}}}},
		{"abuse's own cluster", ratelimit.Config{Backend: ratelimit.BackendRedis, Redis: ratelimit.RedisConfig{Config: sentinel}},
			abuse.Config{Redis: abuse.RedisConfig{Config: redisclient.Config{Addrs: []string{"c1:6379"}}}},
			abuse.Config{Backend: abuse.BackendRedis, Redis: abuse.RedisConfig{Config: redisclient.Config{Addrs: []string{"c1:6379"}}}}},
		{"abuse's own sentinels: the sentinel password", ratelimit.Config{Backend: ratelimit.BackendRedis, Redis: ratelimit.RedisConfig{Config: sentinel}},
			abuse.Config{Redis: abuse.RedisConfig{Config: redisclient.Config{Addrs: []string{"t1:26379"}, MasterName: "other"}}},
			abuse.Config{Backend: abuse.BackendRedis, Redis: abuse.RedisConfig{Config: redisclient.Config{Addrs: []string{"t1:26379"}, MasterName: "other", SentinelPassword: "spw"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got := abuseConfig(&config.Config{RateLimiting: tt.rl, Abuse: tt.abuse})
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("abuseConfig = %+v\nwant          %+v", got, tt.want)
			}
		})
	}
}
