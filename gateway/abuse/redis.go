package abuse

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/acme/shopgate/gateway/redisclient"
)

// Redis is the shared Store, on one node, a Redis Cluster or Sentinel's primary. Per address it
// keeps two keys in one hash slot (the address is their hash tag), so that each script below,
// which touches both, runs on one cluster node:
//
//	<prefix>{<addr>}:f   sorted set of the failure times (ms) within the window; TTL the window
//	<prefix>{<addr>}:b   "<until ms> <failures>" while blocked; TTL the block's length
//
// A failure is one Lua script (EVALSHA): drop the failures older than the window, add this one,
// and when they exceed MaxFailures set the block key and drop the set; so exactly one replica
// creates each block. Times come from the gateway's clock, not Redis's. Each call is bounded
// by the configured timeout; errors are returned (the detector fails open on them).
type Redis struct {
	client  redis.UniversalClient
	prefix  string
	timeout time.Duration
	member  string        // this process's part of a sorted-set member, unique per store
	seq     atomic.Uint64 // the other part
}

// NewRedis connects lazily to the Redis of cfg (zero values mean the defaults, see
// RedisConfig): no round trip happens here, so the gateway starts while Redis is down. It does
// not validate cfg; New does.
func NewRedis(cfg RedisConfig) *Redis {
	full, _ := Config{Redis: cfg}.withDefaults()
	cfg = full.Redis
	client := redisclient.New(cfg.Config)
	var id [6]byte
	_, _ = rand.Read(id[:])
	return &Redis{client: client, prefix: cfg.KeyPrefix, timeout: cfg.Timeout, member: hex.EncodeToString(id[:])}
}

// Close closes the connections.
func (r *Redis) Close() error { return r.client.Close() }

func (r *Redis) failKey(addr netip.Addr) string  { return r.prefix + "{" + addr.String() + "}:f" }
func (r *Redis) blockKey(addr netip.Addr) string { return r.prefix + "{" + addr.String() + "}:b" }

// failScript records one failure. KEYS: failures set, block key. ARGV: now ms, window ms, max
// failures, block ms, member. Returns {created (0|1), until ms (0 when not blocked), failures}.
var failScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local b = redis.call('GET', KEYS[2])
if b then
  local u, n = string.match(b, '^(%d+) (%d+)$')
  if u and tonumber(u) > now then
    return {0, u, tonumber(n)}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('ZADD', KEYS[1], now, ARGV[5])
local n = redis.call('ZCARD', KEYS[1])
if n > tonumber(ARGV[3]) then
  local u = string.format('%.0f', now + tonumber(ARGV[4]))
  redis.call('SET', KEYS[2], u .. ' ' .. n, 'PX', ARGV[4])
  redis.call('DEL', KEYS[1])
  return {1, u, n}
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {0, '0', n}
`)

// liftScript deletes both keys of an address and returns the block key's value (or false).
var liftScript = redis.NewScript(`
local b = redis.call('GET', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
return b
`)

// Fail implements Store.
func (r *Redis) Fail(ctx context.Context, addr netip.Addr, now time.Time, lim Limits) (Block, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	member := r.member + ":" + strconv.FormatUint(r.seq.Add(1), 36)
	res, err := failScript.Run(ctx, r.client, []string{r.failKey(addr), r.blockKey(addr)},
		now.UnixMilli(), lim.Window.Milliseconds(), lim.MaxFailures, lim.BlockFor.Milliseconds(), member).Slice()
	if err != nil {
		return Block{}, false, fmt.Errorf("redis abuse fail: %w", err)
	}
	if len(res) != 3 {
		return Block{}, false, fmt.Errorf("redis abuse fail: unexpected reply %v", res)
	}
	created, _ := res[0].(int64)
	untilStr, _ := res[1].(string)
	failures, _ := res[2].(int64)
	until, err := strconv.ParseInt(untilStr, 10, 64)
	if err != nil {
		return Block{}, false, fmt.Errorf("redis abuse fail: unexpected reply %v", res)
	}
	b := Block{Addr: addr, Failures: int(failures)}
	if until > 0 {
		b.Until = time.UnixMilli(until)
	}
	return b, created == 1, nil
}

// Blocked implements Store: one GET.
func (r *Redis) Blocked(ctx context.Context, addr netip.Addr, now time.Time) (Block, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	v, err := r.client.Get(ctx, r.blockKey(addr)).Result()
	if errors.Is(err, redis.Nil) {
		return Block{}, false, nil
	}
	if err != nil {
		return Block{}, false, fmt.Errorf("redis abuse blocked: %w", err)
	}
	b, ok := parseBlock(addr, v)
	if !ok || !b.Until.After(now) {
		return Block{}, false, nil
	}
	return b, true, nil
}

// maxListed bounds what List reads, so that an operator's list cannot exhaust the gateway.
const maxListed = 100_000

// List implements Store with SCAN over the block keys (at most maxListed of them), on every
// primary of a cluster.
func (r *Redis) List(ctx context.Context, now time.Time) ([]Block, error) {
	ctx, cancel := context.WithTimeout(ctx, 50*r.timeout) // many round trips, each bounded by the client
	defer cancel()
	var (
		mu   sync.Mutex
		keys []string
	)
	err := redisclient.ForEachPrimary(ctx, r.client, func(ctx context.Context, node redis.UniversalClient) error {
		iter := node.Scan(ctx, 0, globEscape(r.prefix)+"{*}:b", 1000).Iterator()
		for iter.Next(ctx) {
			mu.Lock()
			full := len(keys) >= maxListed
			if !full {
				keys = append(keys, iter.Val())
			}
			mu.Unlock()
			if full {
				break
			}
		}
		return iter.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("redis abuse list: %w", err)
	}
	cmds := make([]*redis.StringCmd, len(keys))
	_, err = r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(ctx, k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("redis abuse list: %w", err)
	}
	out := make([]Block, 0, len(keys))
	for i, k := range keys {
		addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(k, r.prefix+"{"), "}:b"))
		if err != nil {
			continue // a key of this shape that the detector did not write
		}
		if b, ok := parseBlock(addr, cmds[i].Val()); ok && b.Until.After(now) {
			out = append(out, b)
		}
	}
	return out, nil
}

// Lift implements Store.
func (r *Redis) Lift(ctx context.Context, addr netip.Addr, now time.Time) (bool, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	v, err := liftScript.Run(ctx, r.client, []string{r.failKey(addr), r.blockKey(addr)}).Text()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("redis abuse lift: %w", err)
	}
	b, ok := parseBlock(addr, v)
	return ok && b.Until.After(now), nil
}

// parseBlock parses a block key's value, "<until ms> <failures>".
func parseBlock(addr netip.Addr, v string) (Block, bool) {
	u, n, ok := strings.Cut(v, " ")
	if !ok {
		return Block{}, false
	}
	until, err1 := strconv.ParseInt(u, 10, 64)
	failures, err2 := strconv.Atoi(n)
	if err1 != nil || err2 != nil {
		return Block{}, false
	}
	return Block{Addr: addr, Until: time.UnixMilli(until), Failures: failures}, true
}

// globEscape escapes the characters SCAN's MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}
