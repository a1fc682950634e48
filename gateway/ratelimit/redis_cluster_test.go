package ratelimit

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/testredis"
	"github.com/acme/shopgate/internal/tlsfiles"
	"github.com/acme/shopgate/internal/tlsfiles/tlsfilestest"
)

// TestSharedLimitBeyondOneNode: two gateways (two stages) on a Redis Cluster of three masters,
// on Sentinel's primary, and on a TLS cluster, hold each caller's limit exactly, the callers'
// keys spread over every master of the cluster.
func TestSharedLimitBeyondOneNode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		connect func(t *testing.T) redisclient.Config
		masters int // the cluster's, whose every master must hold keys; 0: not a cluster
	}{
		{"cluster of three masters", func(t *testing.T) redisclient.Config {
			return redisclient.Config{Addrs: testredis.StartCluster(t, 3).Addrs()}
		}, 3},
		{"cluster, one seed node given", func(t *testing.T) redisclient.Config {
			return redisclient.Config{Addrs: testredis.StartCluster(t, 2).Addrs()[1:]}
		}, 2},
		{"sentinel", func(t *testing.T) redisclient.Config {
			s := testredis.StartSentinel(t, 1)
			return redisclient.Config{Addrs: s.Addrs(), MasterName: testredis.SentinelMaster}
		}, 0},
		{"cluster over mutual TLS", func(t *testing.T) redisclient.Config {
			ca := tlsfilestest.NewCA(t, "redis")
			nodes := tlsfilestest.WriteFiles(t, t.TempDir(), ca, ca.Issue(t, "redis node"))
			c := testredis.StartClusterTLS(t, 3, testredis.ClusterTLS{CertFile: nodes.Cert, KeyFile: nodes.Key, CAFile: nodes.CA})
			gw := tlsfilestest.WriteFiles(t, t.TempDir(), ca, ca.Issue(t, "gateway"))
			return redisclient.Config{Addrs: c.Addrs(), TLS: tlsfiles.ClientFiles{CAFile: gw.CA, CertFile: gw.Cert, KeyFile: gw.Key}}
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := tt.connect(t)
			conn.Timeout = 2 * time.Second
			const limit, callers = 4, 48
			var gws []*gateway
			for range 2 {
				l, err := New(Config{Backend: BackendRedis, Redis: RedisConfig{Config: conn, FailureMode: FailClosed}}, Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = l.Close() })
				gws = append(gws, serve(t, l, route(limit, time.Hour, limit)))
			}
			passed := make([]int, callers)
			var wg sync.WaitGroup
			for c := range callers {
				wg.Go(func() {
					for i := range 3 * limit { // alternating gateways
						resp, _ := gws[i%2].get(t, map[string]string{"X-Test-Subject": fmt.Sprintf("caller-%d", c)})
						switch resp.StatusCode {
						case http.StatusOK:
							passed[c]++
						case http.StatusTooManyRequests:
						default:
							t.Errorf("caller %d: status %d", c, resp.StatusCode)
						}
					}
				})
			}
			wg.Wait()
			for c, n := range passed {
				if n != limit {
					t.Errorf("caller %d: %d requests passed across the two gateways, want exactly %d", c, n, limit)
				}
			}
			if tt.masters == 0 {
				return
			}
			// The callers' keys spread over every master: the limit held across slots.
			client := redisclient.New(conn)
			defer client.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var mu sync.Mutex
			var holding, keys int
			err := redisclient.ForEachPrimary(ctx, client, func(ctx context.Context, node redis.UniversalClient) error {
				n, err := node.DBSize(ctx).Result()
				mu.Lock()
				defer mu.Unlock()
				if n > 0 {
					holding++
				}
				keys += int(n)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if holding != tt.masters || keys != callers {
				t.Fatalf("%d keys on %d masters, want %d keys on all %d", keys, holding, callers, tt.masters)
			}
		})
	}
}

// TestSentinelFailover: the limit of a caller survives the primary's death: the client follows
// the sentinels to the promoted replica, which holds the quota spent before (replicated).
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	s := testredis.StartSentinel(t, 1)
	conn := redisclient.Config{Addrs: s.Addrs(), MasterName: testredis.SentinelMaster, Timeout: time.Second}
	r := NewRedis(RedisConfig{Config: conn, KeyPrefix: DefaultRedisKeyPrefix})
	defer r.Close()
	ctx := context.Background()
	limit := policy.RateLimit{Requests: 5, Per: time.Hour, Burst: 5}
	for i := range 3 {
		if res, err := r.Allow(ctx, "k", limit); err != nil || !res.Allowed {
			t.Fatalf("call %d before the failover: %+v, %v", i+1, res, err)
		}
	}
	if n, err := r.client.Do(ctx, "WAIT", 1, 2000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT for the replica: %d, %v", n, err)
	}
	s.KillPrimary(t)
	allowed, denied := 0, 0
	deadline := time.Now().Add(10 * time.Second)
	for allowed+denied < 5 {
		res, err := r.Allow(ctx, "k", limit)
		switch {
		case err != nil && time.Now().After(deadline):
			t.Fatalf("no answer from the new primary within 10s: %v", err)
		case err != nil: // a pooled connection to the dead primary, once
			time.Sleep(20 * time.Millisecond)
		case res.Allowed:
			allowed++
		default:
			denied++
		}
	}
	if allowed != 2 {
		t.Fatalf("after the failover %d of 5 calls passed, want the 2 left of the quota", allowed)
	}
}
