package testredis_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/testredis"
	"github.com/redis/go-redis/v9"
)

func TestMastersHolding(t *testing.T) {
	c := redis.NewClusterClient(&redis.ClusterOptions{Addrs: testredis.StartCluster(t, 3).Addrs()})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	count := func(pattern string) int {
		t.Helper()
		n, err := testredis.MastersHolding(ctx, c, pattern)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if err := c.Set(ctx, "one:{a}", 1, 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := count("one:*"); n != 1 {
		t.Fatalf("one key: on %d masters, want 1", n)
	}
	for i := range 64 {
		if err := c.Set(ctx, fmt.Sprintf("many:%d", i), 1, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if n := count("many:*"); n != 3 {
		t.Fatalf("64 keys: on %d masters, want all 3", n)
	}
	if n := count("none:*"); n != 0 {
		t.Fatalf("no key: on %d masters, want 0", n)
	}
}
