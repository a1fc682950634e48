package auth

import (
	"crypto/sha256"
	"sync"
	"time"

	"github.com/acme/shopgate/gateway/identity"
)

// cacheKey is the SHA-256 of a token: the cache never holds a token itself.
type cacheKey = [sha256.Size]byte

// cacheEntry is one verified token.
type cacheEntry struct {
	id      identity.Identity
	expires int64 // unix nanoseconds: min(exp, verified + MaxTTL)
	src     *verifier
	gen     uint64 // src's key generation when verified
}

// tokenCache is a bounded map of verified tokens, split in shards so that concurrent hits
// take different read locks. A hit costs a map lookup under a read lock and allocates nothing.
// When a shard is full, the entry closest to expiry among a few sampled (map order is
// random) is evicted.
type tokenCache struct {
	shards   []cacheShard
	perShard int
	maxTTL   time.Duration
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[cacheKey]cacheEntry
}

// evictSample is how many entries a full shard looks at to choose the one to evict.
const evictSample = 8

func newTokenCache(size int, maxTTL time.Duration) *tokenCache {
	n := 16
	if size < 256 {
		n = 1
	}
	c := &tokenCache{shards: make([]cacheShard, n), perShard: (size + n - 1) / n, maxTTL: maxTTL}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]cacheEntry)
	}
	return c
}

func (c *tokenCache) shard(k *cacheKey) *cacheShard {
	return &c.shards[int(k[0])%len(c.shards)]
}

// get returns the identity cached under k if it is still valid at now and its source's keys
// have not changed since.
func (c *tokenCache) get(k *cacheKey, now time.Time) (identity.Identity, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[*k]
	s.mu.RUnlock()
	if !ok || now.UnixNano() >= e.expires || e.src.generation() != e.gen {
		return identity.Identity{}, false
	}
	return e.id, true
}

// put stores a token verified at now that expires at exp.
func (c *tokenCache) put(k *cacheKey, e cacheEntry, now, exp time.Time) {
	if limit := now.Add(c.maxTTL); exp.After(limit) {
		exp = limit
	}
	if !exp.After(now) {
		return
	}
	e.expires = exp.UnixNano()
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[*k]; !ok && len(s.m) >= c.perShard {
		s.evict(now.UnixNano())
	}
	s.m[*k] = e
}

// evict removes one entry: an expired one if the sample has one, else the one closest to
// expiry. The caller holds the write lock.
func (s *cacheShard) evict(now int64) {
	var victim cacheKey
	soonest := int64(1<<63 - 1)
	seen := 0
	for k, e := range s.m {
		if e.expires <= now {
			victim = k
			break
		}
		if e.expires < soonest {
			victim, soonest = k, e.expires
		}
		if seen++; seen == evictSample {
			break
		}
	}
	delete(s.m, victim)
}
