// Package testnats runs a NATS cluster with JetStream inside a test's process: N nodes of the
// nats-server library on free 127.0.0.1 client and route ports, each with its own store under
// t.TempDir(), with optional users, token, nkeys, operator mode (credentials files) and TLS for
// the clients. Nodes can be stopped and restarted on the same ports and store, so that tests
// see a node die and come back.
package testnats

import (
	"crypto/tls"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ClusterName is the name of every test cluster (the routes' cluster name).
const ClusterName = "shopgate-test"

// readyTimeout bounds each wait of the helper: a node's start, a meta leader, a rejoin.
const readyTimeout = 30 * time.Second

// User is a user name and password the cluster accepts (WithUsers).
type User struct {
	Name, Password string
}

// Option configures StartCluster.
type Option func(*options)

type options struct {
	users    []User
	token    string
	nkeys    []string
	tls      *tls.Config
	operator *Operator
	logged   bool
}

// WithUsers makes the cluster require a user name and password from its clients: one of
// users. It goes with WithNKeys, not with WithToken. Default: no authentication.
func WithUsers(users ...User) Option {
	return func(o *options) { o.users = append(o.users, users...) }
}

// WithToken makes the cluster require token from its clients. Not with WithUsers or WithNKeys.
// Default: no authentication.
func WithToken(token string) Option {
	return func(o *options) { o.token = token }
}

// WithNKeys makes the cluster accept clients that sign its nonce with the seed of one of the
// public user nkeys ("U..."). It goes with WithUsers. Default: none.
func WithNKeys(publicKeys ...string) Option {
	return func(o *options) { o.nkeys = append(o.nkeys, publicKeys...) }
}

// WithTLS makes the client ports TLS only, with cfg (its Certificates, and ClientCAs with
// ClientAuth for mutual TLS). The routes between the nodes stay plaintext on loopback.
// Default: plaintext.
func WithTLS(cfg *tls.Config) Option {
	return func(o *options) { o.tls = cfg }
}

// WithServerLogs sends the nodes' logs to the test's log. Default: silent.
func WithServerLogs() Option {
	return func(o *options) { o.logged = true }
}

// Cluster is a running test cluster. Its methods are safe for concurrent use, but a node must
// not be stopped and restarted by two goroutines at once.
type Cluster struct {
	t           testing.TB
	opts        options
	clientPorts []int
	routePorts  []int
	dirs        []string

	mu      sync.Mutex
	servers []*server.Server // nil: stopped
}

// StartCluster starts a cluster of nodes (at least 1) and returns once every node is routed to
// the others and JetStream has a meta leader that every node follows. Everything stops when
// the test ends.
func StartCluster(t testing.TB, nodes int, opts ...Option) *Cluster {
	t.Helper()
	if nodes < 1 {
		t.Fatalf("testnats: %d nodes", nodes)
	}
	c := &Cluster{t: t, servers: make([]*server.Server, nodes)}
	for _, o := range opts {
		o(&c.opts)
	}
	ports := freePorts(t, 2*nodes)
	c.clientPorts, c.routePorts = ports[:nodes], ports[nodes:]
	base := t.TempDir()
	for i := range nodes {
		c.dirs = append(c.dirs, filepath.Join(base, "n"+strconv.Itoa(i)))
	}
	t.Cleanup(c.shutdown)
	for i := range nodes {
		c.start(i)
	}
	c.waitReady(func() error { return c.clusterReady(-1) })
	return c
}

// URL returns the client URLs of every node, comma-separated, as nats.go takes them
// ("nats://127.0.0.1:a,nats://127.0.0.1:b,..."), stopped nodes included.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.clientPorts))
	for i := range c.clientPorts {
		urls[i] = c.NodeURL(i)
	}
	return strings.Join(urls, ",")
}

// NodeURL returns the client URL of node i alone.
func (c *Cluster) NodeURL(i int) string {
	return "nats://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(c.clientPorts[i]))
}

// Nodes returns the number of nodes, running or stopped.
func (c *Cluster) Nodes() int { return len(c.clientPorts) }

// Server returns node i's server, nil while it is stopped: for inspection (JetStream
// monitoring, Connz).
func (c *Cluster) Server(i int) *server.Server {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.servers[i]
}

// StopNode stops node i the way a rolling restart does (lame duck mode): it hands the
// leadership of its streams, consumers and the meta group to the other nodes, closes its
// clients (they reconnect to the others) and shuts down. It returns once the node has stopped;
// its store stays for RestartNode.
func (c *Cluster) StopNode(i int) {
	c.t.Helper()
	c.take(i).LameDuckShutdown()
}

// KillNode stops node i at once, as a crash does: its leaderships are not handed over, so the
// other nodes elect new leaders after the Raft election timeout (seconds). Its store stays for
// RestartNode.
func (c *Cluster) KillNode(i int) {
	c.t.Helper()
	s := c.take(i)
	s.Shutdown()
	s.WaitForShutdown()
}

// take removes node i from the running ones and returns its server.
func (c *Cluster) take(i int) *server.Server {
	c.t.Helper()
	c.mu.Lock()
	s := c.servers[i]
	c.servers[i] = nil
	c.mu.Unlock()
	if s == nil {
		c.t.Fatalf("testnats: node %d is not running", i)
	}
	return s
}

// RestartNode starts the stopped node i again on its ports and store, and returns once it is
// routed to the other running nodes, follows the meta leader and its streams and consumers have
// caught up (its health check passes).
func (c *Cluster) RestartNode(i int) {
	c.t.Helper()
	if c.Server(i) != nil {
		c.t.Fatalf("testnats: node %d is running", i)
	}
	c.start(i)
	c.waitReady(func() error { return c.clusterReady(i) })
}

// start runs node i. The ports were free when StartCluster chose them; on a restart the same
// port is bound again (SO_REUSEADDR lets it pass TIME_WAIT).
func (c *Cluster) start(i int) {
	c.t.Helper()
	routes := make([]string, len(c.routePorts))
	for j, p := range c.routePorts {
		routes[j] = "nats://127.0.0.1:" + strconv.Itoa(p)
	}
	o := &server.Options{
		ServerName: "n" + strconv.Itoa(i),
		Host:       "127.0.0.1",
		Port:       c.clientPorts[i],
		JetStream:  true,
		StoreDir:   c.dirs[i],
		// Small limits: the tests hold little, and the machine's disk and memory are shared.
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  1 << 30,
		NoLog:              !c.opts.logged,
		NoSigs:             true,
		// StopNode's lame duck mode: leaderships handed over (about 1s), then the clients
		// closed over the rest.
		LameDuckDuration:    1500 * time.Millisecond,
		LameDuckGracePeriod: 500 * time.Millisecond,
		Authorization:       c.opts.token,
	}
	if len(c.routePorts) > 1 { // one node alone runs JetStream standalone
		o.Cluster = server.ClusterOpts{Name: ClusterName, Host: "127.0.0.1", Port: c.routePorts[i]}
		o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
	}
	for _, u := range c.opts.users {
		o.Users = append(o.Users, &server.User{Username: u.Name, Password: u.Password})
	}
	for _, k := range c.opts.nkeys {
		o.Nkeys = append(o.Nkeys, &server.NkeyUser{Nkey: k})
	}
	if c.opts.operator != nil {
		if err := c.opts.operator.configure(o); err != nil {
			c.t.Fatalf("testnats: node %d: operator: %v", i, err)
		}
	}
	if c.opts.tls != nil {
		o.TLS, o.TLSConfig, o.TLSTimeout = true, c.opts.tls.Clone(), 5
		o.TLSVerify = c.opts.tls.ClientAuth == tls.RequireAndVerifyClientCert
	}
	s, err := server.NewServer(o)
	if err != nil {
		c.t.Fatalf("testnats: node %d: %v", i, err)
	}
	if c.opts.logged {
		s.SetLoggerV2(testLogger{t: c.t, prefix: fmt.Sprintf("[n%d] ", i)}, false, false, false)
	}
	go s.Start()
	if !s.ReadyForConnections(readyTimeout) {
		s.Shutdown()
		s.WaitForShutdown()
		c.t.Fatalf("testnats: node %d did not start within %v", i, readyTimeout)
	}
	c.mu.Lock()
	c.servers[i] = s
	c.mu.Unlock()
}

// clusterReady returns nil when every running node is routed to the others, follows a meta
// leader, and every stream and consumer has a leader whose replicas on running nodes are
// current (caught up); with node >= 0, also when that node's health check passes.
func (c *Cluster) clusterReady(node int) error {
	c.mu.Lock()
	servers := append([]*server.Server(nil), c.servers...)
	c.mu.Unlock()
	running, leader := map[string]bool{}, false
	for _, s := range servers {
		if s != nil {
			running[s.Name()] = true
		}
	}
	for i, s := range servers {
		if s == nil {
			continue
		}
		// Two routes per peer are possible (pooling); fewer than one per peer is not ready.
		if n := s.NumRoutes(); n < len(running)-1 {
			return fmt.Errorf("node %d has %d routes, want %d", i, n, len(running)-1)
		}
		if !s.JetStreamIsCurrent() {
			return fmt.Errorf("node %d does not follow a JetStream meta leader", i)
		}
		leader = leader || s.JetStreamIsLeader() || !s.JetStreamIsClustered()
		if err := groupsCurrent(s, running); err != nil {
			return fmt.Errorf("node %d: %w", i, err)
		}
	}
	if !leader {
		return fmt.Errorf("no JetStream meta leader among %d running nodes", len(running))
	}
	if node >= 0 {
		if h := servers[node].Healthz(nil); h.Status != "ok" {
			return fmt.Errorf("node %d is not healthy: %s", node, h.Error)
		}
	}
	return nil
}

// groupsCurrent returns nil when every stream and consumer s holds has a leader and, where s
// leads, its replicas on running nodes are caught up.
func groupsCurrent(s *server.Server, running map[string]bool) error {
	if !s.JetStreamIsClustered() {
		return nil
	}
	jsz, err := s.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Consumer: true})
	if err != nil {
		return fmt.Errorf("jsz: %w", err)
	}
	check := func(what string, ci *server.ClusterInfo) error {
		if ci == nil {
			return nil
		}
		if ci.Leader == "" {
			return fmt.Errorf("%s has no leader", what)
		}
		if ci.Leader != s.Name() {
			return nil
		}
		for _, r := range ci.Replicas {
			if running[r.Name] && (!r.Current || r.Offline) {
				return fmt.Errorf("%s: replica %s is not current", what, r.Name)
			}
		}
		return nil
	}
	for _, a := range jsz.AccountDetails {
		for _, st := range a.Streams {
			if err := check("stream "+st.Name, st.Cluster); err != nil {
				return err
			}
			for _, ci := range st.Consumer {
				if err := check("consumer "+st.Name+" > "+ci.Name, ci.Cluster); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// waitReady polls ready until it returns nil, or fails the test after readyTimeout.
func (c *Cluster) waitReady(ready func() error) {
	c.t.Helper()
	deadline := time.Now().Add(readyTimeout)
	for {
		err := ready()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("testnats: cluster not ready after %v: %v", readyTimeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *Cluster) shutdown() {
	c.mu.Lock()
	servers := c.servers
	c.servers = make([]*server.Server, len(servers))
	c.mu.Unlock()
	for _, s := range servers {
		if s != nil {
			s.Shutdown()
		}
	}
	for _, s := range servers {
		if s != nil {
			s.WaitForShutdown()
		}
	}
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 now: all are held open together
// before they are released, so that none is returned twice.
func freePorts(t testing.TB, n int) []int {
	t.Helper()
	ports := make([]int, n)
	ls := make([]net.Listener, n)
	for i := range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("testnats: finding a free port: %v", err)
		}
		ls[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	for _, l := range ls {
		_ = l.Close()
	}
	return ports
}

// testLogger is the nodes' logger with WithServerLogs: one line per entry in the test's log.
type testLogger struct {
	t      testing.TB
	prefix string
}

func (l testLogger) Noticef(format string, v ...any) { l.t.Logf(l.prefix+format, v...) }
func (l testLogger) Warnf(format string, v ...any)   { l.t.Logf(l.prefix+"WARN "+format, v...) }
func (l testLogger) Fatalf(format string, v ...any)  { l.t.Logf(l.prefix+"FATAL "+format, v...) }
func (l testLogger) Errorf(format string, v ...any)  { l.t.Logf(l.prefix+"ERROR "+format, v...) }
func (l testLogger) Debugf(format string, v ...any)  { l.t.Logf(l.prefix+"DEBUG "+format, v...) }
func (l testLogger) Tracef(format string, v ...any)  { l.t.Logf(l.prefix+"TRACE "+format, v...) }
