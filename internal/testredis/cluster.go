package testredis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// slots is the number of hash slots of a Redis Cluster.
const slots = 16384

// Cluster is a Redis Cluster of one test: redis-server processes on free ports of 127.0.0.1,
// each a master of an equal share of the slots (no replicas), killed when the test ends.
type Cluster struct {
	nodes []*server
}

// StartCluster starts masters redis-server processes (the machine's, Redis 7) with
// --cluster-enabled yes in t.TempDir(), gives each its share of the 16384 slots, joins them
// (CLUSTER MEET) and waits until every node says cluster_state:ok and knows every other. It
// takes about a second. No redis-server: a skip (a failure under CI=true).
func StartCluster(t testing.TB, masters int) *Cluster {
	t.Helper()
	return startCluster(t, masters, nil)
}

// ClusterTLS is how StartClusterTLS's nodes serve TLS.
type ClusterTLS struct {
	// CertFile and KeyFile are every node's certificate (it must name 127.0.0.1 and allow
	// client authentication: the nodes present it to each other on the cluster bus).
	CertFile, KeyFile string
	// CAFile is the CA that verifies the nodes' certificates and the clients'
	// (tls-auth-clients yes).
	CAFile string
}

// StartClusterTLS is StartCluster with TLS only, on the client ports and on the cluster bus
// (tls-cluster yes): clients need a certificate of f.CAFile.
func StartClusterTLS(t testing.TB, masters int, f ClusterTLS) *Cluster {
	t.Helper()
	return startCluster(t, masters, &f)
}

func startCluster(t testing.TB, masters int, f *ClusterTLS) *Cluster {
	t.Helper()
	if masters < 1 {
		t.Fatalf("testredis: a cluster of %d masters", masters)
	}
	var tlsConfig *tls.Config
	if f != nil {
		tlsConfig = clientTLS(t, *f)
	}
	c := &Cluster{}
	buses := make([]int, masters)
	for i := range masters {
		port, bus := freePort(t), freePort(t)
		buses[i] = bus
		dir := newDir(t, fmt.Sprintf("cluster-node-%d", i))
		args := []string{"--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "2000"}
		if f == nil {
			args = append(args, "--port", strconv.Itoa(port))
		} else {
			args = append(args, "--port", "0", "--tls-port", strconv.Itoa(port), "--tls-cluster", "yes")
			args = append(args, tlsArgs(f.CertFile, f.KeyFile, f.CAFile)...)
		}
		args = append(args, baseArgs(dir)...)
		s, log := launch(t, dir, port, args...)
		if s == nil {
			need(t, "redis-server --cluster-enabled exited (Redis 7 needed):\n"+log)
		}
		c.nodes = append(c.nodes, s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	clients := make([]*redis.Client, masters)
	for i, n := range c.nodes {
		clients[i] = client(t, n.addr, tlsConfig)
		lo, hi := i*slots/masters, (i+1)*slots/masters-1
		if err := clients[i].Do(ctx, "CLUSTER", "SET-CONFIG-EPOCH", i+1).Err(); err != nil {
			t.Fatalf("testredis: cluster node %s: CLUSTER SET-CONFIG-EPOCH: %v", n.addr, err)
		}
		if err := clients[i].Do(ctx, "CLUSTER", "ADDSLOTSRANGE", lo, hi).Err(); err != nil {
			t.Fatalf("testredis: cluster node %s: CLUSTER ADDSLOTSRANGE %d %d: %v", n.addr, lo, hi, err)
		}
	}
	for i := 1; i < masters; i++ {
		port := strings.TrimPrefix(c.nodes[i].addr, "127.0.0.1:")
		if err := clients[0].Do(ctx, "CLUSTER", "MEET", "127.0.0.1", port, buses[i]).Err(); err != nil {
			t.Fatalf("testredis: CLUSTER MEET %s: %v", c.nodes[i].addr, err)
		}
	}
	want := "cluster_known_nodes:" + strconv.Itoa(masters)
	for i, cl := range clients {
		waitFor(t, 20*time.Second, "cluster node "+c.nodes[i].addr+" ready", func(ctx context.Context) (bool, string) {
			info, err := cl.ClusterInfo(ctx).Result()
			if err != nil {
				return false, err.Error()
			}
			return strings.Contains(info, "cluster_state:ok") && strings.Contains(info, want+"\r\n") &&
				strings.Contains(info, "cluster_slots_ok:16384"), info
		})
	}
	return c
}

// Addrs returns the nodes' addresses, 127.0.0.1:port each (the TLS ports with TLS).
func (c *Cluster) Addrs() []string {
	out := make([]string, len(c.nodes))
	for i, n := range c.nodes {
		out[i] = n.addr
	}
	return out
}

// clientTLS is a client configuration trusting f.CAFile and presenting f's certificate.
func clientTLS(t testing.TB, f ClusterTLS) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatalf("testredis: no certificate in %s", f.CAFile)
	}
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}, ServerName: "127.0.0.1"}
}
