package scaleouttest

// The distributed backends of issue 14: PostgreSQL stores (one schema per service, shared by
// its replicas), a Redis Cluster for the gateways' limits, and Kafka (three kfake brokers in
// this process, on TCP) or a three-node NATS cluster with the stream at R3.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/internal/testkafka"
	"github.com/acme/shopgate/internal/testnats"
	"github.com/acme/shopgate/internal/testpg"
	"github.com/acme/shopgate/internal/testredis"
	"github.com/acme/shopgate/services/events"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx", for reading the outboxes
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// kafkaPostgres: PostgreSQL, three Kafka brokers (the topic at replication factor 3, the
// adapter's default), a Redis Cluster of three masters. The broker stopped is broker 1: its
// listener closes and its connections are cut, and the partitions it led move to the others.
func kafkaPostgres(t testing.TB) *backend {
	t.Helper()
	k := testkafka.Start(t, 3)
	be := postgresRedis(t, "-broker-url", k.URL())
	be.stopBroker = func() (string, error) { k.StopBroker(1); return "Kafka broker 1 of 3", nil }
	be.startBroker = func() error { k.RestartBroker(1); return nil }
	be.published = func() (int, error) {
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
		if err != nil {
			return 0, err
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, events.DefaultKafkaTopic)
		if err != nil {
			return 0, err
		}
		if err := ends.Error(); err != nil {
			return 0, err
		}
		n := 0
		ends.Each(func(o kadm.ListedOffset) { n += int(o.Offset) })
		return n, nil
	}
	be.caughtUp = func() error {
		cl, err := kgo.NewClient(kgo.SeedBrokers(k.Addrs()...))
		if err != nil {
			return err
		}
		defer cl.Close()
		adm := kadm.NewClient(cl)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		topics, err := adm.ListTopics(ctx, events.DefaultKafkaTopic)
		if err != nil {
			return err
		}
		td, ok := topics[events.DefaultKafkaTopic]
		if !ok || td.Err != nil {
			return fmt.Errorf("topic %s: %v", events.DefaultKafkaTopic, td.Err)
		}
		for _, p := range td.Partitions {
			if len(p.Replicas) != 3 {
				return fmt.Errorf("partition %d of %s has %d replicas, want 3", p.Partition, td.Topic, len(p.Replicas))
			}
		}
		lags, err := adm.Lag(ctx, services...)
		if err != nil {
			return err
		}
		for _, svc := range services {
			l, ok := lags[svc]
			if !ok {
				return fmt.Errorf("no consumer group %s", svc)
			}
			if err := l.Error(); err != nil {
				return fmt.Errorf("consumer group %s: %w", svc, err)
			}
			if n := l.Lag.TotalByTopic()[events.DefaultKafkaTopic].Lag; n != 0 {
				return fmt.Errorf("consumer group %s lags %d events behind", svc, n)
			}
		}
		return nil
	}
	return be
}

// natsR3Postgres: PostgreSQL, a three-node NATS cluster with the stream and its consumers at
// R3 (-broker-replicas 3), a Redis Cluster of three masters. The broker stopped is the
// stream's leader, killed as in a crash (no leadership handed over): the others elect a new
// one.
func natsR3Postgres(t testing.TB) *backend {
	t.Helper()
	n := testnats.StartCluster(t, 3)
	be := postgresRedis(t, "-broker-url", n.URL(), "-broker-replicas", "3")
	nc, err := nats.Connect(n.URL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	stream := func(ctx context.Context) (*jetstream.StreamInfo, jetstream.Stream, error) {
		s, err := js.Stream(ctx, "SHOP_EVENTS")
		if err != nil {
			return nil, nil, err
		}
		info, err := s.Info(ctx)
		return info, s, err
	}
	stopped := -1
	be.stopBroker = func() (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		info, _, err := stream(ctx)
		if err != nil {
			return "", err
		}
		if info.Cluster == nil {
			return "", errors.New("the stream has no cluster information")
		}
		for i := range n.Nodes() {
			if s := n.Server(i); s != nil && s.Name() == info.Cluster.Leader {
				stopped = i
				n.KillNode(i)
				return fmt.Sprintf("NATS node %d of 3 (%s, the stream's leader, killed)", i, info.Cluster.Leader), nil
			}
		}
		return "", fmt.Errorf("no node is the stream's leader %q", info.Cluster.Leader)
	}
	be.startBroker = func() error {
		if stopped < 0 {
			return errors.New("no node was stopped")
		}
		n.RestartNode(stopped)
		return nil
	}
	be.published = func() (int, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := js.Stream(ctx, "SHOP_EVENTS")
		if err != nil {
			return 0, err
		}
		info, err := s.Info(ctx, jetstream.WithSubjectFilter(events.SubjectPrefix+">"))
		if err != nil {
			return 0, err
		}
		n := 0
		for subj, c := range info.State.Subjects {
			if !strings.HasPrefix(subj, events.SubjectPrefix+"deadletter.") {
				n += int(c)
			}
		}
		return n, nil
	}
	be.caughtUp = func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		info, s, err := stream(ctx)
		if err != nil {
			return err
		}
		if info.Config.Replicas != 3 {
			return fmt.Errorf("the stream has %d replicas, want 3", info.Config.Replicas)
		}
		if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			return fmt.Errorf("the stream's cluster is %+v, want a leader and 2 replicas", info.Cluster)
		}
		for _, r := range info.Cluster.Replicas {
			if !r.Current {
				return fmt.Errorf("the stream's replica on %s is not current", r.Name)
			}
		}
		seen := map[string]bool{}
		list := s.ListConsumers(ctx)
		for c := range list.Info() {
			svc, _, _ := strings.Cut(c.Name, "_")
			seen[svc] = true
			if c.Config.Replicas != 0 && c.Config.Replicas != 3 {
				return fmt.Errorf("consumer %s has %d replicas, want 3", c.Name, c.Config.Replicas)
			}
			if c.NumPending != 0 || c.NumAckPending != 0 {
				return fmt.Errorf("consumer %s has %d events pending and %d unacknowledged", c.Name, c.NumPending, c.NumAckPending)
			}
		}
		if err := list.Err(); err != nil {
			return err
		}
		for _, svc := range services {
			if !seen[svc] {
				return fmt.Errorf("no consumer of the %s service", svc)
			}
		}
		return nil
	}
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
	redisYAML := fmt.Sprintf("addrs: [%s]", strings.Join(r.Addrs(), ", "))
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
