package scaleouttest

// What a scale-out stack runs on: where the services keep their data and send their events,
// and where the gateways share their rate limit. Each backend is a constructor returning a
// backend; switching engines is adding one (the distributed ones are in backends_test.go).

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/acme/shopgate/services/events"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/redis/go-redis/v9"
	_ "modernc.org/sqlite" // database/sql driver "sqlite", for reading the outboxes
)

// backend is what a scale-out stack runs on.
type backend struct {
	// serviceFlags are the store and broker flags of every replica of service ("order",
	// "payment", "inventory"); the replicas of one service share its store.
	serviceFlags func(service string) []string
	// rateLimitRedis and abuseRedis are the connection entries of the gateways'
	// rate_limiting.redis and abuse.redis sections (the inside of a YAML flow mapping).
	rateLimitRedis, abuseRedis string
	// stopBroker stops one node of the broker cluster, saying which, and startBroker starts it
	// again; nil when the broker cannot be stopped by the test (the machine's own).
	stopBroker  func() (string, error)
	startBroker func() error
	// store opens service's database for the final checks (its outbox).
	store func(t testing.TB, service string) *sql.DB
	// caughtUp checks the broker once the orders are final: every service's consumers have
	// every event handled, and the events are replicated as configured. nil: no check.
	caughtUp func() error
	// published counts the messages the broker holds on the events' stream or topic (dead
	// letters aside). nil: not counted.
	published func() (int, error)
}

// natsURL is the NATS server this machine runs (nats-server 2.9, JetStream on).
const natsURL = "nats://127.0.0.1:4222"

// redisAddr is the Redis server this machine runs.
const redisAddr = "127.0.0.1:6379"

// localBackend is what runs on one machine without PostgreSQL or a cluster (BenchmarkSaga's
// binaries_sqlite_nats, between the single process and the distributed stack): each service's
// replicas share one SQLite file, the events go through the machine's NATS on a stream and
// subject prefix of the test's own (deleted at the end), and the gateways share one Redis
// under a key prefix of the test's own. The broker is not stopped (it is the machine's).
func localBackend(t testing.TB) *backend {
	t.Helper()
	need(t, dialable("127.0.0.1:4222"), "NATS with JetStream at "+natsURL)
	need(t, dialable(redisAddr), "Redis at "+redisAddr)
	id := events.NewID()[:12]
	stream, prefix := "SCALE_"+id, "scale"+id+"."
	dir := t.TempDir()
	nc, err := nats.Connect(natsURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if js, err := jetstream.New(nc); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = js.DeleteStream(ctx, stream)
			cancel()
		}
		nc.Close()
	})
	rl, abuse := "scale"+id+":rl:", "scale"+id+":abuse:"
	t.Cleanup(func() { deleteRedisKeys(t, redisAddr, rl, abuse) })
	return &backend{
		serviceFlags: func(service string) []string {
			return []string{"-data", filepath.Join(dir, service), "-broker-url", natsURL,
				"-broker-stream", stream, "-broker-subject-prefix", prefix}
		},
		rateLimitRedis: fmt.Sprintf("addr: %q, key_prefix: %q", redisAddr, rl),
		abuseRedis:     fmt.Sprintf("addr: %q, key_prefix: %q", redisAddr, abuse),
		store: func(t testing.TB, service string) *sql.DB {
			t.Helper()
			path := filepath.Join(dir, service, service, service+".db")
			db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
	}
}

// deleteRedisKeys removes the keys under the prefixes from the Redis at addr.
func deleteRedisKeys(t testing.TB, addr string, prefixes ...string) {
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, p := range prefixes {
		// redis_rate puts "rate:" before the limiter's prefix.
		for _, pattern := range []string{p + "*", "rate:" + p + "*"} {
			iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
			for iter.Next(ctx) {
				_ = rdb.Del(ctx, iter.Val()).Err()
			}
			if err := iter.Err(); err != nil {
				t.Logf("cleaning Redis keys %s: %v", pattern, err)
			}
		}
	}
}
