package abuse

import (
	"context"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// shared is the Store of the Redis backend as the detector uses it: Redis, the local Memory
// while Redis is unreachable (fail open: an outage never blocks anyone on its own; each replica
// then counts alone, and its blocks last to their end), and a cache of Redis's answers to
// Blocked, kept SyncInterval, so that a request costs a Redis round trip at most once per
// address and interval.
//
// After a failed call Redis is skipped, and only one call per probe interval tries it again,
// so a dead Redis costs at most one timeout per interval. The change to and from the outage is
// logged once each.
type shared struct {
	redis    *Redis
	local    *Memory
	cache    *lru[verdict]
	sync     time.Duration
	probe    time.Duration
	logger   *slog.Logger
	errors   prometheus.Counter
	degraded prometheus.Gauge

	down      atomic.Bool
	nextProbe atomic.Int64 // ns since the epoch: while down, Redis is skipped before it
}

// verdict is a cached answer of Redis for one address.
type verdict struct {
	block   Block // Until zero: not blocked
	expires int64 // ns since the epoch
}

// useRedis reports whether a call at now goes to Redis: always while it is up, and for one call
// per probe interval while it is down.
func (s *shared) useRedis(now time.Time) bool {
	if !s.down.Load() {
		return true
	}
	next := s.nextProbe.Load()
	return now.UnixNano() >= next && s.nextProbe.CompareAndSwap(next, now.UnixNano()+int64(s.probe))
}

// result notes the outcome of a Redis call; it returns true when the call failed and the local
// store must answer instead. A cancelled caller says nothing about Redis.
func (s *shared) result(ctx context.Context, now time.Time, err error) (fallback bool) {
	if err == nil {
		if s.down.Load() && s.down.CompareAndSwap(true, false) {
			s.degraded.Set(0)
			s.logger.Info("abuse backend recovered")
		}
		return false
	}
	if ctx.Err() != nil {
		return true
	}
	s.errors.Inc()
	if !s.down.Load() {
		s.nextProbe.Store(now.UnixNano() + int64(s.probe))
		if s.down.CompareAndSwap(false, true) {
			s.degraded.Set(1)
			s.logger.Warn("abuse backend unreachable; failing open to per-replica counting", "err", err)
		}
	}
	return true
}

// Fail implements Store.
func (s *shared) Fail(ctx context.Context, addr netip.Addr, now time.Time, lim Limits) (Block, bool, error) {
	if s.useRedis(now) {
		b, created, err := s.redis.Fail(ctx, addr, now, lim)
		if !s.result(ctx, now, err) {
			if b.Until.After(now) {
				s.remember(addr, b, now)
			}
			return b, created, nil
		}
	}
	return s.local.Fail(ctx, addr, now, lim)
}

// Blocked implements Store. The local store answers first (a map lookup: it holds the blocks
// made while Redis was down, honoured to their end); then the cached answer of Redis when it is
// younger than the sync interval; then Redis, whose answer is cached. While Redis is down, the
// local answer is the answer.
func (s *shared) Blocked(ctx context.Context, addr netip.Addr, now time.Time) (Block, bool, error) {
	if b, blocked, _ := s.local.Blocked(ctx, addr, now); blocked {
		return b, true, nil
	}
	t := now.UnixNano()
	sh := s.cache.shardOf(addr)
	sh.mu.Lock()
	if v := sh.get(addr); v != nil && v.expires > t {
		b := v.block
		sh.mu.Unlock()
		return b, b.Until.After(now), nil
	}
	sh.mu.Unlock()
	if !s.useRedis(now) {
		return Block{}, false, nil
	}
	b, blocked, err := s.redis.Blocked(ctx, addr, now)
	if s.result(ctx, now, err) {
		return Block{}, false, nil
	}
	s.remember(addr, b, now)
	return b, blocked, nil
}

// remember caches b as addr's answer for the sync interval.
func (s *shared) remember(addr netip.Addr, b Block, now time.Time) {
	sh := s.cache.shardOf(addr)
	sh.mu.Lock()
	*sh.add(addr) = verdict{block: b, expires: now.UnixNano() + int64(s.sync)}
	sh.mu.Unlock()
}

// List implements Store: Redis's blocks and those made locally during an outage. An error of
// Redis is returned: the operator must know the list is not the whole.
func (s *shared) List(ctx context.Context, now time.Time) ([]Block, error) {
	local, _ := s.local.List(ctx, now)
	remote, err := s.redis.List(ctx, now)
	if err != nil {
		return nil, err
	}
	seen := make(map[netip.Addr]bool, len(remote))
	for _, b := range remote {
		seen[b.Addr] = true
	}
	for _, b := range local {
		if !seen[b.Addr] {
			remote = append(remote, b)
		}
	}
	return remote, nil
}

// Lift implements Store: in Redis, in the local store and in this replica's cache; the other
// replicas see it within the sync interval.
func (s *shared) Lift(ctx context.Context, addr netip.Addr, now time.Time) (bool, error) {
	sh := s.cache.shardOf(addr)
	sh.mu.Lock()
	sh.remove(addr)
	sh.mu.Unlock()
	local, _ := s.local.Lift(ctx, addr, now)
	remote, err := s.redis.Lift(ctx, addr, now)
	if err != nil {
		return local, err
	}
	return local || remote, nil
}
