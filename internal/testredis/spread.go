package testredis

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// MastersHolding returns how many masters of c (a Redis Cluster client; any other client counts
// as one node) hold at least one key matching pattern (SCAN MATCH, up to 1000 keys a node), so
// that a test can check that its keys spread over every slot owner.
func MastersHolding(ctx context.Context, c redis.UniversalClient, pattern string) (int, error) {
	holds := func(ctx context.Context, node redis.UniversalClient) (bool, error) {
		keys, _, err := node.Scan(ctx, 0, pattern, 1000).Result()
		return len(keys) > 0, err
	}
	cc, ok := c.(*redis.ClusterClient)
	if !ok {
		held, err := holds(ctx, c)
		if held {
			return 1, err
		}
		return 0, err
	}
	var mu sync.Mutex
	n := 0
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		held, err := holds(ctx, node)
		if held {
			mu.Lock()
			n++
			mu.Unlock()
		}
		return err
	})
	return n, err
}
