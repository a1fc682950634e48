package httpcache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/acme/shopgate/internal/testredis"
)

// TestRedisStoreShared: two gateways' stores on one Redis node and on a Redis Cluster share
// answers of many resources (spread over every master of the cluster: an answer and its
// resource's generation are read with one MGET, so they must share a slot), and a write
// through one invalidates for both.
func TestRedisStoreShared(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		connect func(t *testing.T) (redisclient.Config, string)
		masters int // 0: not a cluster
	}{
		{"one node", func(t *testing.T) (redisclient.Config, string) {
			return redisclient.Config{Addr: testredis.Need(t)}, testredis.Prefix(t, "cache")
		}, 0},
		{"cluster of three masters", func(t *testing.T) (redisclient.Config, string) {
			return redisclient.Config{Addrs: testredis.StartCluster(t, 3).Addrs()}, "shopgate-test:cache:"
		}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			conn, prefix := tt.connect(t)
			conn.Timeout = 2 * time.Second
			var stores []Store
			for range 2 {
				s, err := New(Config{Backend: BackendRedis, Redis: RedisConfig{Config: conn, KeyPrefix: prefix}}, true, Options{})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = s.Close() })
				stores = append(stores, s.store)
			}
			a, b := stores[0], stores[1]
			ctx := context.Background()
			now := time.Now()
			const n = 40
			res := func(i int) string { return fmt.Sprintf("/v1/orders/o-%d", i) }
			for i := range n {
				key := "GET " + res(i)
				if _, _, ok := a.Get(ctx, key, res(i), now); ok {
					t.Fatalf("%s: a hit before any answer", key)
				}
				_, tok, _ := a.Get(ctx, key, res(i), now)
				a.Put(ctx, key, res(i), tok, &Entry{ContentType: "application/json", Body: []byte(fmt.Sprint(i)), Stored: now, Expires: now.Add(time.Minute)})
			}
			for i := range n {
				e, _, ok := b.Get(ctx, "GET "+res(i), res(i), now)
				if !ok || string(e.Body) != fmt.Sprint(i) {
					t.Fatalf("%s on b: %v %+v, want a's answer", res(i), ok, e)
				}
			}
			if tt.masters > 0 {
				checkSpread(t, conn, prefix, tt.masters)
			}
			// A write through b (to the order and its collection) invalidates for a.
			b.Invalidate(ctx, Resources(res(0)+":cancel"))
			if _, _, ok := a.Get(ctx, "GET "+res(0), res(0), now); ok {
				t.Fatal("a still serves an answer b's write invalidated")
			}
			if _, _, ok := a.Get(ctx, "GET "+res(1), res(1), now); !ok {
				t.Fatal("a lost an answer of another resource")
			}
			// An answer fetched before a write is not stored after it.
			_, tok, _ := a.Get(ctx, "GET "+res(0), res(0), now)
			b.Invalidate(ctx, []string{res(0)})
			a.Put(ctx, "GET "+res(0), res(0), tok, &Entry{Body: []byte("stale"), Stored: now, Expires: now.Add(time.Minute)})
			if e, _, ok := b.Get(ctx, "GET "+res(0), res(0), now); ok {
				t.Fatalf("b serves %q, stored after a write that came later", e.Body)
			}
		})
	}
}

// checkSpread fails t unless every master of the cluster holds keys of prefix.
func checkSpread(t *testing.T, conn redisclient.Config, prefix string, masters int) {
	t.Helper()
	c := redisclient.New(conn)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	holding, err := testredis.MastersHolding(ctx, c, prefix+"*")
	if err != nil || holding != masters {
		t.Fatalf("keys on %d masters (%v), want all %d", holding, err, masters)
	}
}

func TestHashTag(t *testing.T) {
	t.Parallel()
	s := &redisStore{prefix: "p:"}
	for _, res := range []string{"/v1/orders/o-1", "", "}", "/a}b{c}", "{x}"} {
		e, g := s.entryKey("k", res), s.genKey(res)
		if redisSlot(e) != redisSlot(g) {
			t.Errorf("resource %q: entry %q and generation %q in different slots", res, e, g)
		}
	}
}

// redisSlot is the key's hash tag as Redis Cluster reads it: what stands between the first {
// and the next }, when not empty; else the whole key.
func redisSlot(key string) string {
	for i := 0; i < len(key); i++ {
		if key[i] == '{' {
			for j := i + 1; j < len(key); j++ {
				if key[j] == '}' {
					if j > i+1 {
						return key[i+1 : j]
					}
					return key
				}
			}
			return key
		}
	}
	return key
}
