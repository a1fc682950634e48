package testredis_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/shopgate/internal/testredis"
)

// TestStartCluster: a cluster of three masters serves keys of every slot through a cluster
// client, and its nodes are gone when the test ends.
func TestStartCluster(t *testing.T) {
	t.Parallel()
	var addrs []string
	t.Run("cluster", func(t *testing.T) {
		c := testredis.StartCluster(t, 3)
		addrs = c.Addrs()
		if len(addrs) != 3 {
			t.Fatalf("Addrs() = %v, want 3 nodes", addrs)
		}
		cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: addrs})
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for i := range 300 {
			if err := cc.Set(ctx, fmt.Sprintf("k%d", i), i, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		var total atomic.Int64
		err := cc.ForEachMaster(ctx, func(ctx context.Context, n *redis.Client) error {
			size, err := n.DBSize(ctx).Result()
			if size == 0 {
				return fmt.Errorf("master %s holds no key: the slots are not spread", n.Options().Addr)
			}
			total.Add(size)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if total.Load() != 300 {
			t.Fatalf("the masters hold %d keys, want 300", total.Load())
		}
	})
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a, MaxRetries: -1, DialerRetries: 1})
		if err := c.Ping(context.Background()).Err(); err == nil {
			t.Errorf("node %s still answers after its test", a)
		}
		_ = c.Close()
	}
}

// TestStartSentinel: the sentinels name the primary, a write there reaches the replica, and
// after KillPrimary they name the replica, which took the write with it.
func TestStartSentinel(t *testing.T) {
	t.Parallel()
	s := testredis.StartSentinel(t, 2)
	if len(s.Addrs()) != 2 {
		t.Fatalf("Addrs() = %v, want 2 sentinels", s.Addrs())
	}
	fc := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: testredis.SentinelMaster, SentinelAddrs: s.Addrs()})
	defer fc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fc.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := fc.Do(ctx, "WAIT", 1, 2000).Err(); err != nil {
		t.Fatal(err)
	}
	old := s.Primary(t)
	next := s.KillPrimary(t)
	if next == old {
		t.Fatalf("the primary is still %s", old)
	}
	var got string
	var err error
	for range 50 { // the pool's connections to the dead primary fail once each
		if got, err = fc.Get(ctx, "k").Result(); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got != "v" {
		t.Fatalf("after the failover: %q, %v; want the replicated value", got, err)
	}
}
