package abuse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/testclock"
	"github.com/acme/shopgate/internal/testredis"
)

// uniquePrefix is a key prefix of this test alone, on a Redis the test started itself (the
// processes die with the test: nothing to delete).
func uniquePrefix(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "shopgate-test:abuse:" + hex.EncodeToString(b[:]) + ":"
}

// TestRedisStoreOnCluster runs the Store contract on a Redis Cluster of three masters: each
// script's two keys share their address's slot, and List finds the blocks on every master.
func TestRedisStoreOnCluster(t *testing.T) {
	t.Parallel()
	addrs := testredis.StartCluster(t, 3).Addrs()
	testStore(t, func(t *testing.T) Store {
		r := NewRedis(RedisConfig{Config: redisclient.Config{Addrs: addrs, Timeout: 2 * time.Second}, KeyPrefix: uniquePrefix(t)})
		t.Cleanup(func() { _ = r.Close() })
		return r
	})
}

// TestDetectorsShareBeyondOneNode: two replicas on a Redis Cluster, and on Sentinel's primary,
// see each other's blocks of many addresses (spread over every master of the cluster) within
// the sync interval, list them all, and see a lift.
func TestDetectorsShareBeyondOneNode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		connect func(t *testing.T) redisclient.Config
		masters int // 0: not a cluster
	}{
		{"cluster of three masters", func(t *testing.T) redisclient.Config {
			return redisclient.Config{Addrs: testredis.StartCluster(t, 3).Addrs()}
		}, 3},
		{"sentinel", func(t *testing.T) redisclient.Config {
			return redisclient.Config{Addrs: testredis.StartSentinel(t, 1).Addrs(), MasterName: testredis.SentinelMaster}
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn := tt.connect(t)
			conn.Timeout = 2 * time.Second
			cfg := Config{MaxFailures: 2, Backend: BackendRedis, Redis: RedisConfig{Config: conn, KeyPrefix: uniquePrefix(t)}}
			clock := testclock.New()
			a, b := newFixture(t, cfg, clock), newFixture(t, cfg, clock)
			sa, sb := serve(t, a.d), serve(t, b.d)
			const n = 30
			addrs := make([]string, n)
			for i := range addrs {
				addrs[i] = fmt.Sprintf("198.51.100.%d", i+1)
				if resp, _ := sb.get(t, addrs[i], http.StatusOK); resp.StatusCode != http.StatusOK { // b caches "not blocked"
					t.Fatalf("%s on b before any failure: %d", addrs[i], resp.StatusCode)
				}
				for j := range 3 { // a, b, a: the third failure, on a, makes the block
					s := []*server{sa, sb}[j%2]
					if resp, _ := s.get(t, addrs[i], http.StatusUnauthorized); resp.StatusCode != http.StatusUnauthorized {
						t.Fatalf("%s failure %d: %d, want 401", addrs[i], j, resp.StatusCode)
					}
				}
				resp, body := sa.get(t, addrs[i], http.StatusOK)
				checkBlocked(t, resp, body, "300")
			}
			clock.Advance(DefaultSyncInterval)
			for _, addr := range addrs {
				resp, body := sb.get(t, addr, http.StatusOK)
				checkBlocked(t, resp, body, "299")
			}
			list, err := b.d.List(context.Background())
			if err != nil || len(list) != n {
				t.Fatalf("List on b: %d blocks, %v; want %d", len(list), err, n)
			}
			if tt.masters > 0 {
				checkSpread(t, conn, cfg.Redis.KeyPrefix, tt.masters)
			}
			if err := b.d.Lift(context.Background(), netip.MustParseAddr(addrs[0])); err != nil {
				t.Fatal(err)
			}
			clock.Advance(DefaultSyncInterval)
			if resp, _ := sa.get(t, addrs[0], http.StatusOK); resp.StatusCode != http.StatusOK {
				t.Fatalf("a a sync interval after b's lift: %d, want 200", resp.StatusCode)
			}
			if resp, _ := sa.get(t, addrs[1], http.StatusOK); resp.StatusCode != http.StatusTooManyRequests {
				t.Fatalf("another address after the lift: %d, want still 429", resp.StatusCode)
			}
		})
	}
}

// checkSpread fails t unless every one of the cluster's masters holds block keys of prefix.
func checkSpread(t *testing.T, conn redisclient.Config, prefix string, masters int) {
	t.Helper()
	c := redisclient.New(conn)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	holding, err := testredis.MastersHolding(ctx, c, prefix+"*:b")
	if err != nil || holding != masters {
		t.Fatalf("block keys on %d masters (%v), want all %d", holding, err, masters)
	}
}
