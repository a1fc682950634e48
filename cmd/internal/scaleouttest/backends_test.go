//go:build scaleout_dist

package scaleouttest

// The distributed backends of issue 14: PostgreSQL stores (one schema per service, shared by
// its replicas), a Redis Cluster for the gateways' limits, and Kafka (three kfake brokers in
// this process, on TCP) or a three-node NATS cluster with streams at R3.

import (
	"database/sql"
	"fmt"
	"strings"
	"testing"

	"github.com/acme/shopgate/internal/testkafka"
	"github.com/acme/shopgate/internal/testnats"
	"github.com/acme/shopgate/internal/testpg"
	"github.com/acme/shopgate/internal/testredis"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for reading the outboxes
)

func init() {
	backendCases = append([]backendCase{
		{"kafka_postgres", kafkaPostgres},
		{"nats_r3_postgres", natsR3Postgres},
	}, backendCases...)
	benchCases = append(benchCases, benchCase{"postgres_kafka", func(t testing.TB) *benchStack { return clusterStack(t, kafkaPostgres(t)) }})
}

// stoppedBroker is the broker node the tests stop and start again.
const stoppedBroker = 1

// kafkaPostgres: PostgreSQL, three Kafka brokers, a Redis Cluster of three masters.
func kafkaPostgres(t testing.TB) *backend {
	t.Helper()
	k := testkafka.Start(t, 3)
	be := postgresRedis(t, "-broker-url", k.URL())
	be.stopBroker = func() error { k.StopBroker(stoppedBroker); return nil }
	be.startBroker = func() error { k.RestartBroker(stoppedBroker); return nil }
	return be
}

// natsR3Postgres: PostgreSQL, a three-node NATS cluster with the stream at R3, a Redis
// Cluster of three masters.
func natsR3Postgres(t testing.TB) *backend {
	t.Helper()
	n := testnats.StartCluster(t, 3)
	be := postgresRedis(t, "-broker-url", n.URL(), "-broker-replicas", "3")
	be.stopBroker = func() error { n.StopNode(stoppedBroker); return nil }
	be.startBroker = func() error { n.RestartNode(stoppedBroker); return nil }
	return be
}

// postgresRedis is a backend whose services keep their data in PostgreSQL, a schema each,
// with brokerFlags, and whose gateways share their limits in a Redis Cluster.
func postgresRedis(t testing.TB, brokerFlags ...string) *backend {
	t.Helper()
	urls := map[string]string{}
	for _, svc := range services {
		urls[svc] = testpg.Schema(t, "scaleout_"+svc)
	}
	r := testredis.StartCluster(t, 3)
	redisYAML := fmt.Sprintf("{addrs: [%s]}", strings.Join(r.Addrs(), ", "))
	dir := t.TempDir()
	return &backend{
		serviceFlags: func(service string) []string {
			return append([]string{"-data", dir, "-database-url", urls[service]}, brokerFlags...)
		},
		rateLimitRedis: redisYAML,
		abuseRedis:     redisYAML,
		store: func(t testing.TB, service string) *sql.DB {
			t.Helper()
			db, err := sql.Open("pgx", urls[service])
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = db.Close() })
			return db
		},
	}
}
