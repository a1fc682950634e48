// Package redisclient builds the go-redis client the gateway's Redis backends share (the rate
// limiter's, the abuse detector's and the response cache's): one that fails fast, on a single
// node, a Redis Cluster or a primary found through Sentinel. A stage asks Redis on the
// request's path, so a dead or slow Redis must cost a request at most one Timeout: no retries,
// one dial attempt, every dial, read, write and pool wait bounded, and the call's context
// honoured. Connections are made lazily: building a client makes no round trip, so the gateway
// starts while Redis is down.
//
// Config is the connection part of each backend's `redis:` section (embedded inline, so its
// keys sit beside the backend's own): `addr` names one node, `addrs` the seed nodes of a
// cluster, and `addrs` with `master_name` the sentinels that know the primary.
package redisclient

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/shopgate/internal/tlsfiles"
)

// The modes Config.Mode returns.
const (
	// ModeSingle is one Redis node (Config.Addr).
	ModeSingle = "single"
	// ModeCluster is a Redis Cluster reached through its seed nodes (Config.Addrs).
	ModeCluster = "cluster"
	// ModeSentinel is the primary of Config.MasterName, found through the sentinels
	// (Config.Addrs), followed across failovers.
	ModeSentinel = "sentinel"
)

// Config is where Redis is and how long one call may take: the keys every gateway `redis:`
// section shares. The zero value is not usable alone: each backend fills Addr (when Addrs is
// empty) and Timeout with its own defaults before calling New.
type Config struct {
	// Addr is host:port of a single Redis node. Default: the backend's (127.0.0.1:6379), when
	// Addrs is empty too. Not with Addrs.
	Addr string `yaml:"addr" json:"addr"`
	// Addrs are host:port addresses: the seed nodes of a Redis Cluster (any reachable subset
	// of its nodes; the others are discovered), or the sentinels when MasterName is set.
	// Default: none (Addr).
	Addrs []string `yaml:"addrs" json:"addrs"`
	// MasterName is the name of the primary the sentinels of Addrs monitor: set, the client
	// asks them for the primary and follows it across failovers. Default: none (a cluster
	// when Addrs is set).
	MasterName string `yaml:"master_name" json:"master_name"`
	// Username for Redis ACLs. Default: none.
	Username string `yaml:"username" json:"username"`
	// Password for Redis; cmd/ fills it from a secret, never the YAML. Default: none.
	Password string `yaml:"-" json:"-"`
	// SentinelUsername is the ACL user of the sentinels (Sentinel mode only). Default: none.
	SentinelUsername string `yaml:"sentinel_username" json:"sentinel_username"`
	// SentinelPassword is the sentinels' password; cmd/ fills it from a secret. Default: none.
	SentinelPassword string `yaml:"-" json:"-"`
	// DB is the database number; a Redis Cluster has only database 0. Default: 0.
	DB int `yaml:"db" json:"db"`
	// Timeout bounds the dial, each read and write, the wait for a pooled connection, and each
	// call as a whole. Default: the backend's (100ms for the rate limiter and the abuse
	// detector, 50ms for the response cache).
	Timeout time.Duration `yaml:"timeout" json:"timeout"`
	// PoolSize is the number of connections (per node in a cluster). Default: go-redis's (10
	// per GOMAXPROCS; 5 per GOMAXPROCS and node in a cluster).
	PoolSize int `yaml:"pool_size" json:"pool_size"`
	// TLS connects over TLS with these files (ca_file, cert_file and key_file for mutual
	// TLS, server_name; enable: true for the system roots alone), re-read when they change,
	// for new connections (internal/tlsfiles). Every connection uses it: each node of a
	// cluster, the sentinels and the primary. The name verified is server_name, else the host
	// dialed (each node's own). Default: none (plaintext).
	TLS tlsfiles.ClientFiles `yaml:"tls" json:"tls"`
}

// Mode is ModeSingle, ModeCluster or ModeSentinel, as the fields set say.
func (c Config) Mode() string {
	switch {
	case c.MasterName != "":
		return ModeSentinel
	case len(c.Addrs) > 0:
		return ModeCluster
	default:
		return ModeSingle
	}
}

// Where names the Redis of c for log lines: Addr, or the Addrs (with the master name).
func (c Config) Where() string {
	switch c.Mode() {
	case ModeSentinel:
		return fmt.Sprintf("sentinel %s %v", c.MasterName, c.Addrs)
	case ModeCluster:
		return fmt.Sprintf("cluster %v", c.Addrs)
	default:
		return c.Addr
	}
}

// Validate reports every problem of c at once; the messages name the YAML keys. An empty Addr
// is accepted (the backend's default fills it); a zero Timeout too.
func (c Config) Validate() error {
	var errs []error
	if c.Addr != "" && len(c.Addrs) > 0 {
		errs = append(errs, errors.New("addr and addrs are both set: addr names one node, addrs a cluster's seed nodes or (with master_name) the sentinels"))
	}
	if c.Addr != "" {
		if err := checkAddr(c.Addr); err != nil {
			errs = append(errs, fmt.Errorf("addr: %w", err))
		}
	}
	for i, a := range c.Addrs {
		if err := checkAddr(a); err != nil {
			errs = append(errs, fmt.Errorf("addrs[%d]: %w", i, err))
		}
	}
	if c.MasterName != "" && len(c.Addrs) == 0 {
		errs = append(errs, errors.New("master_name needs addrs: the addresses of the sentinels"))
	}
	if c.SentinelUsername != "" && c.MasterName == "" {
		errs = append(errs, errors.New("sentinel_username is set without master_name"))
	}
	if c.DB < 0 {
		errs = append(errs, fmt.Errorf("db %d is negative", c.DB))
	}
	if c.DB != 0 && c.Mode() == ModeCluster {
		errs = append(errs, fmt.Errorf("db %d: a Redis Cluster has database 0 only (addrs without master_name is a cluster)", c.DB))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", c.Timeout))
	}
	if c.PoolSize < 0 {
		errs = append(errs, fmt.Errorf("pool_size %d is negative", c.PoolSize))
	}
	return errors.Join(errs...)
}

func checkAddr(a string) error {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return fmt.Errorf("%q is not host:port", a)
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 || host == "" {
		return fmt.Errorf("%q is not host:port", a)
	}
	return nil
}

// New returns a client of c that fails fast: a *redis.Client for one node or for Sentinel
// (go-redis's failover client), a *redis.ClusterClient for a cluster. c must be valid
// (Validate) with a positive Timeout.
//
// Fail-fast settings, in every mode: MaxRetries -1 (a retry would double what a dead Redis
// costs a request), one dial attempt (go-redis's default, 5 dials 100ms apart, would hold a
// request 0.5s), Timeout on the dial, each read and write and the pool wait, and the call's
// context honoured. In a cluster, go-redis still follows up to 3 MOVED/ASK redirections (what
// a resharding or a failover answers) and may try a second node after a network error, all
// within the caller's context: the backends bound each call by Timeout as a whole.
func New(c Config) redis.UniversalClient {
	addrs := c.Addrs
	if len(addrs) == 0 {
		addrs = []string{c.Addr}
	}
	o := &redis.UniversalOptions{
		Addrs:                 addrs,
		MasterName:            c.MasterName,
		IsClusterMode:         c.Mode() == ModeCluster, // a cluster even when given one seed node
		Username:              c.Username,
		Password:              c.Password,
		SentinelUsername:      c.SentinelUsername,
		SentinelPassword:      c.SentinelPassword,
		DB:                    c.DB,
		DialTimeout:           c.Timeout,
		ReadTimeout:           c.Timeout,
		WriteTimeout:          c.Timeout,
		PoolTimeout:           c.Timeout,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialerRetries:         1,
		PoolSize:              c.PoolSize,
		DisableIdentity:       true, // no CLIENT SETINFO round trip on every new connection
		Dialer:                dialer(c),
	}
	return redis.NewUniversalClient(o)
}

// ForEachPrimary calls fn with the client of each primary of c: every master of a cluster
// (concurrently), or c itself. Commands without a key (SCAN, FLUSHDB) need it on a cluster,
// where they reach one node only.
func ForEachPrimary(ctx context.Context, c redis.UniversalClient, fn func(ctx context.Context, node redis.UniversalClient) error) error {
	if cc, ok := c.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error { return fn(ctx, node) })
	}
	return fn(ctx, c)
}
