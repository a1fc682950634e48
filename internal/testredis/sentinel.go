package testredis

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelMaster is the master name StartSentinel's sentinels monitor.
const SentinelMaster = "shopgate"

// Sentinel is a primary, one replica and sentinels of one test, all redis-server processes on
// free ports of 127.0.0.1, killed when the test ends. The sentinels judge the primary down
// after 500ms without an answer (quorum 1) and fail over to the replica.
type Sentinel struct {
	mu        sync.Mutex
	data      map[string]*server // primary and replica by address
	sentinels []*server
}

// StartSentinel starts a primary, a replica of it and n sentinels (1 to 3 is plenty) monitoring
// it as SentinelMaster, and waits until the replica is in sync and every sentinel knows the
// replica and the other sentinels. It takes about a second or two. No redis-server: a skip (a
// failure under CI=true).
func StartSentinel(t testing.TB, n int) *Sentinel {
	t.Helper()
	if n < 1 {
		t.Fatalf("testredis: %d sentinels", n)
	}
	s := &Sentinel{data: map[string]*server{}}
	pport := freePort(t)
	pdir := newDir(t, "sentinel-primary")
	primary := start(t, pdir, pport, append([]string{"--port", strconv.Itoa(pport)}, baseArgs(pdir)...)...)
	rport := freePort(t)
	rdir := newDir(t, "sentinel-replica")
	replica := start(t, rdir, rport, append([]string{"--port", strconv.Itoa(rport), "--replicaof", "127.0.0.1", strconv.Itoa(pport)}, baseArgs(rdir)...)...)
	s.data[primary.addr], s.data[replica.addr] = primary, replica
	waitFor(t, 10*time.Second, "replica "+replica.addr+" in sync", func(ctx context.Context) (bool, string) {
		info, err := client(t, replica.addr, nil).Info(ctx, "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		return strings.Contains(info, "master_link_status:up"), info
	})
	for i := range n {
		port := freePort(t)
		dir := newDir(t, fmt.Sprintf("sentinel-%d", i))
		conf := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndir %q\n"+
			"sentinel monitor %s 127.0.0.1 %d 1\n"+
			"sentinel down-after-milliseconds %s 500\n"+
			"sentinel failover-timeout %s 5000\n",
			port, dir, SentinelMaster, pport, SentinelMaster, SentinelMaster)
		path := filepath.Join(dir, "sentinel.conf")
		if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
			t.Fatal(err)
		}
		s.sentinels = append(s.sentinels, start(t, dir, port, path, "--sentinel"))
	}
	for _, sn := range s.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.addr, DisableIdentity: true})
		t.Cleanup(func() { _ = sc.Close() })
		waitFor(t, 20*time.Second, "sentinel "+sn.addr+" ready", func(ctx context.Context) (bool, string) {
			replicas, err := sc.Replicas(ctx, SentinelMaster).Result()
			if err != nil {
				return false, err.Error()
			}
			if len(replicas) != 1 || replicas[0]["flags"] != "slave" || replicas[0]["master-link-status"] != "ok" {
				return false, fmt.Sprintf("replicas %v", replicas)
			}
			others, err := sc.Sentinels(ctx, SentinelMaster).Result()
			if err != nil {
				return false, err.Error()
			}
			return len(others) == n-1, fmt.Sprintf("%d other sentinels known", len(others))
		})
	}
	return s
}

// Addrs returns the sentinels' addresses.
func (s *Sentinel) Addrs() []string {
	out := make([]string, len(s.sentinels))
	for i, sn := range s.sentinels {
		out[i] = sn.addr
	}
	return out
}

// Primary returns the primary's address as the first sentinel knows it.
func (s *Sentinel) Primary(t testing.TB) string {
	t.Helper()
	sc := redis.NewSentinelClient(&redis.Options{Addr: s.sentinels[0].addr, DisableIdentity: true})
	defer sc.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	a, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
	if err != nil {
		t.Fatalf("testredis: sentinel %s: %v", s.sentinels[0].addr, err)
	}
	return net.JoinHostPort(a[0], a[1])
}

// KillPrimary kills the primary (SIGKILL) and waits until every sentinel names the replica as
// the new primary and it answers as one: a failover, a few seconds. It returns the new
// primary's address. The old primary stays dead.
func (s *Sentinel) KillPrimary(t testing.TB) string {
	t.Helper()
	old := s.Primary(t)
	s.mu.Lock()
	p := s.data[old]
	s.mu.Unlock()
	if p == nil {
		t.Fatalf("testredis: the primary %s is not one of this Sentinel's servers", old)
	}
	p.kill()
	var next string
	for _, sn := range s.sentinels {
		sc := redis.NewSentinelClient(&redis.Options{Addr: sn.addr, DisableIdentity: true})
		waitFor(t, 30*time.Second, "sentinel "+sn.addr+" naming a new primary", func(ctx context.Context) (bool, string) {
			a, err := sc.GetMasterAddrByName(ctx, SentinelMaster).Result()
			if err != nil {
				return false, err.Error()
			}
			next = net.JoinHostPort(a[0], a[1])
			return next != old, "still " + next
		})
		_ = sc.Close()
	}
	waitFor(t, 10*time.Second, "new primary "+next+" acting as one", func(ctx context.Context) (bool, string) {
		role, err := client(t, next, nil).Do(ctx, "ROLE").Slice()
		if err != nil {
			return false, err.Error()
		}
		return len(role) > 0 && role[0] == "master", fmt.Sprint(role)
	})
	return next
}
