package ratelimit

import (
	"context"
	"hash/maphash"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/acme/shopgate/gateway/policy"
)

// shardCount spreads the keys of Memory over independent locks.
const shardCount = 64

// Memory is the in-process Backend: a GCRA limiter (the algorithm of the Redis backend, so that
// both answer alike) per key, in 64 shards of at most ceil(MaxKeys/64) keys each, the least
// recently used key of a shard evicted when it is full. It starts no goroutine and needs no
// Close. An evicted key starts again with a full burst, which errs on the caller's side only
// for keys idle longer than every other key of their shard.
//
// Memory bound: about 150 bytes plus the key's length per key (entry, map slot, key bytes); with
// the default 100,000 keys and keys of ~60 bytes, about 21 MB however many distinct callers
// arrive (TestMemoryFloodIsBounded pins it).
type Memory struct {
	seed      maphash.Seed
	now       func() time.Time
	perShard  int
	evictions atomic.Uint64
	shards    [shardCount]shard
}

type shard struct {
	mu         sync.Mutex
	m          map[string]*entry
	head, tail *entry // most and least recently used
	_          [24]byte
}

type entry struct {
	key        string
	tat        int64 // theoretical arrival time, ns since the Unix epoch
	prev, next *entry
}

// NewMemory returns an in-memory backend of at most maxKeys keys (DefaultMaxKeys when 0), on the
// clock now (time.Now when nil).
func NewMemory(maxKeys int, now func() time.Time) *Memory {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	if now == nil {
		now = time.Now
	}
	m := &Memory{seed: maphash.MakeSeed(), now: now, perShard: (maxKeys + shardCount - 1) / shardCount}
	for i := range m.shards {
		m.shards[i].m = make(map[string]*entry)
	}
	return m
}

// Len returns the number of keys held.
func (m *Memory) Len() int {
	n := 0
	for i := range m.shards {
		s := &m.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// Cap returns the most keys Memory holds.
func (m *Memory) Cap() int { return m.perShard * shardCount }

// Evictions returns how many keys were evicted to stay within Cap.
func (m *Memory) Evictions() uint64 { return m.evictions.Load() }

// Allow implements Backend with GCRA: the emission interval is Per/Requests, a key may run
// Burst intervals ahead of now. limit.Burst must be resolved (>= 1, see Backend).
func (m *Memory) Allow(_ context.Context, key string, limit policy.RateLimit) (Result, error) {
	now := m.now().UnixNano()
	interval := int64(limit.Per) / int64(limit.Requests)
	if interval <= 0 {
		interval = 1
	}
	burst := int64(limit.Burst)
	if burst > math.MaxInt64/4/interval { // keep interval*burst far from overflowing
		burst = math.MaxInt64 / 4 / interval
	}
	s := &m.shards[maphash.String(m.seed, key)%shardCount]
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.m[key]
	tat := now
	if e != nil && e.tat > now {
		tat = e.tat
	}
	newTat := tat + interval
	diff := now - (newTat - interval*burst)
	if diff < 0 {
		if e != nil {
			s.touch(e)
		}
		return Result{RetryAfter: time.Duration(-diff), ResetAfter: time.Duration(tat - now)}, nil
	}
	if e == nil {
		e = m.insert(s, key)
	} else {
		s.touch(e)
	}
	e.tat = newTat
	return Result{Allowed: true, Remaining: int(diff / interval), ResetAfter: time.Duration(newTat - now)}, nil
}

// insert adds key at the head of s, evicting the tail when s is full. s.mu is held.
func (m *Memory) insert(s *shard, key string) *entry {
	var e *entry
	if len(s.m) >= m.perShard && s.tail != nil {
		e = s.tail // reuse the evicted entry: no allocation at steady state
		s.unlink(e)
		delete(s.m, e.key)
		m.evictions.Add(1)
		*e = entry{}
	} else {
		e = &entry{}
	}
	e.key = key
	s.m[key] = e
	s.pushFront(e)
	return e
}

func (s *shard) touch(e *entry) {
	if s.head == e {
		return
	}
	s.unlink(e)
	s.pushFront(e)
}

func (s *shard) unlink(e *entry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		s.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		s.tail = e.prev
	}
	e.prev, e.next = nil, nil
}

func (s *shard) pushFront(e *entry) {
	e.next = s.head
	if s.head != nil {
		s.head.prev = e
	}
	s.head = e
	if s.tail == nil {
		s.tail = e
	}
}
