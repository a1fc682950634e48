// Package testkafka runs a Kafka cluster inside a test process: franz-go's kfake, a Kafka
// protocol implementation, serving real TCP on free 127.0.0.1 ports, one listener per broker.
// Clients connect to it as to any Kafka cluster (seed brokers, metadata, partition leaders,
// consumer group coordinators, idempotent producers).
//
// What kfake is not: a replicated log. Its brokers share one in-memory store; a topic's
// replication factor is recorded and reported, not enforced. StopBroker therefore stops what
// a client sees of a broker (its listener and its connections; kfake moves the partitions it
// led and the groups it coordinated to the others, as a controller would), but no data can be
// lost with it: a test of "no loss while a broker is down" proves the client side (retries,
// leader moves, coordinator moves, commits), not the broker's replication.
package testkafka

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Cluster is a running kfake cluster. Start returns it; t's cleanup stops it.
type Cluster struct {
	t  testing.TB
	kc *kfake.Cluster

	mu      sync.Mutex
	addrs   []string            // by broker index, fixed across restarts
	byPort  map[string]int      // listener port -> broker index
	conns   []map[net.Conn]bool // by broker index: the connections its listener accepted
	stopped []bool              // by broker index
}

// Start starts a cluster of brokers brokers (at least 1) on free 127.0.0.1 ports; t's cleanup
// closes it and every connection to it. Topics are not created on first use (as on a cluster
// with auto.create.topics.enable=false); a group's session timeout may be as short as 100ms.
func Start(t testing.TB, brokers int) *Cluster {
	t.Helper()
	return StartWith(t, brokers)
}

// StartWith is Start with more kfake options: kfake.TLS (every listener serves TLS only),
// kfake.EnableSASL with kfake.Superuser (clients must authenticate), and so on.
func StartWith(t testing.TB, brokers int, opts ...kfake.Opt) *Cluster {
	t.Helper()
	if brokers < 1 {
		t.Fatalf("testkafka: %d brokers: want at least 1", brokers)
	}
	c := &Cluster{t: t, byPort: map[string]int{}, conns: make([]map[net.Conn]bool, brokers),
		stopped: make([]bool, brokers)}
	next := 0 // kfake listens for broker 0, 1, ... in order at start
	listen := func(network, address string) (net.Listener, error) {
		ln, err := net.Listen(network, address)
		if err != nil {
			return nil, err
		}
		_, port, _ := net.SplitHostPort(ln.Addr().String())
		c.mu.Lock()
		defer c.mu.Unlock()
		i, ok := c.byPort[port]
		if !ok {
			if next >= brokers {
				ln.Close()
				return nil, fmt.Errorf("testkafka: unexpected listener %s", ln.Addr())
			}
			i = next
			next++
			c.byPort[port] = i
			c.conns[i] = map[net.Conn]bool{}
		}
		return &trackingListener{Listener: ln, c: c, i: i}, nil
	}
	kc, err := kfake.NewCluster(append([]kfake.Opt{kfake.NumBrokers(brokers), kfake.ListenFn(listen),
		kfake.ClusterID("testkafka"), kfake.GroupMinSessionTimeout(100 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatalf("testkafka: starting %d brokers: %v", brokers, err)
	}
	c.kc = kc
	c.addrs = kc.ListenAddrs()
	if len(c.addrs) != brokers {
		kc.Close()
		t.Fatalf("testkafka: %d listeners for %d brokers", len(c.addrs), brokers)
	}
	t.Cleanup(c.close)
	return c
}

// Kfake returns the kfake cluster, for fault injection beyond StopBroker.
func (c *Cluster) Kfake() *kfake.Cluster { return c.kc }

// Addrs returns the brokers' host:port addresses, by index (a stopped broker's too).
func (c *Cluster) Addrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.addrs...)
}

// URL returns the cluster's broker URL for -broker-url: "kafka://127.0.0.1:p1,127.0.0.1:p2".
func (c *Cluster) URL() string { return "kafka://" + strings.Join(c.Addrs(), ",") }

// StopBroker stops broker i: it leaves the cluster (kfake elects new leaders for its
// partitions and moves its groups, as after a broker's death), its listener closes and its
// open connections are cut, so that clients see connection errors and refused dials on its
// address. Stopping a stopped broker does nothing; stopping the last running one fails t.
func (c *Cluster) StopBroker(i int) {
	c.t.Helper()
	c.check(i)
	c.mu.Lock()
	if c.stopped[i] {
		c.mu.Unlock()
		return
	}
	c.stopped[i] = true
	c.mu.Unlock()
	if err := c.kc.RemoveNode(int32(i)); err != nil {
		c.t.Fatalf("testkafka: stopping broker %d: %v", i, err)
	}
	c.mu.Lock()
	conns := c.conns[i]
	c.conns[i] = map[net.Conn]bool{}
	c.mu.Unlock()
	for conn := range conns {
		_ = conn.Close()
	}
}

// RestartBroker brings a stopped broker i back, with its node id and on its address; kfake
// then spreads partition leadership over the running brokers again. Restarting a running
// broker does nothing.
func (c *Cluster) RestartBroker(i int) {
	c.t.Helper()
	c.check(i)
	c.mu.Lock()
	if !c.stopped[i] {
		c.mu.Unlock()
		return
	}
	_, port, _ := net.SplitHostPort(c.addrs[i])
	c.mu.Unlock()
	p, _ := strconv.Atoi(port)
	if _, _, err := c.kc.AddNode(int32(i), p); err != nil {
		c.t.Fatalf("testkafka: restarting broker %d on port %d: %v", i, p, err)
	}
	c.mu.Lock()
	c.stopped[i] = false
	c.mu.Unlock()
}

func (c *Cluster) check(i int) {
	c.t.Helper()
	if i < 0 || i >= len(c.stopped) {
		c.t.Fatalf("testkafka: broker %d: the cluster has brokers 0 to %d", i, len(c.stopped)-1)
	}
}

// close stops the cluster and cuts every connection still open.
func (c *Cluster) close() {
	c.kc.Close()
	c.mu.Lock()
	var conns []net.Conn
	for i := range c.conns {
		for conn := range c.conns[i] {
			conns = append(conns, conn)
		}
		c.conns[i] = nil
	}
	c.mu.Unlock()
	for _, conn := range conns {
		_ = conn.Close()
	}
}

// trackingListener records the connections it accepts for broker i, so that StopBroker and
// the cleanup can cut them.
type trackingListener struct {
	net.Listener
	c *Cluster
	i int
}

func (l *trackingListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.c.mu.Lock()
	defer l.c.mu.Unlock()
	if l.c.conns[l.i] == nil || l.c.stopped[l.i] {
		_ = conn.Close()
		return nil, errors.New("testkafka: broker stopped")
	}
	tc := &trackedConn{Conn: conn, c: l.c, i: l.i}
	l.c.conns[l.i][tc] = true
	return tc, nil
}

// trackedConn forgets itself when closed.
type trackedConn struct {
	net.Conn
	c    *Cluster
	i    int
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.c.mu.Lock()
		delete(c.c.conns[c.i], c)
		c.c.mu.Unlock()
	})
	return c.Conn.Close()
}
