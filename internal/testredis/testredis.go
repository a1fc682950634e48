// Package testredis is what the tests that talk to the machine's Redis share: its address, a
// check that says clearly when it is missing (a skip, or a failure under CI=true), and key
// prefixes of one test alone, deleted when the test ends.
package testredis

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Addr is the Redis the tests use (bash .ci/services.sh starts it).
const Addr = "127.0.0.1:6379"

// Need returns Addr, or skips the test (fails it when CI=true) when nothing answers there.
func Need(t testing.TB) string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", Addr, 500*time.Millisecond)
	if err != nil {
		msg := "this test needs Redis on " + Addr + " (bash .ci/services.sh starts it): " + err.Error()
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	_ = conn.Close()
	return Addr
}

// Prefix returns a key prefix ("shopgate-test:<name>:<random>:") of this test alone and, when
// the test ends, deletes every key holding it (wherever it stands in the key: a library may put
// its own prefix before it).
func Prefix(t testing.TB, name string) string {
	t.Helper()
	var b [6]byte
	_, _ = rand.Read(b[:])
	prefix := "shopgate-test:" + name + ":" + hex.EncodeToString(b[:]) + ":"
	t.Cleanup(func() {
		c := redis.NewClient(&redis.Options{Addr: Addr})
		defer c.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		iter := c.Scan(ctx, 0, "*"+prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			c.Del(ctx, iter.Val())
		}
	})
	return prefix
}
