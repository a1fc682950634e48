package abuse

import (
	"container/list"
	"hash/maphash"
	"net/netip"
	"sync"
)

// lruShards spreads the addresses of an lru over independent locks.
const lruShards = 32

// lru is a bounded map from address to V in shards of at most perShard entries, the least
// recently used entry of a full shard dropped for a new one. Callers lock a shard (shardOf),
// then get, add or remove under that lock; a lookup allocates nothing.
type lru[V any] struct {
	seed   maphash.Seed
	shards [lruShards]lruShard[V]
}

type lruShard[V any] struct {
	mu       sync.Mutex
	m        map[netip.Addr]*list.Element // Value: *lruEntry[V]
	order    list.List                    // front: most recently used
	perShard int
}

type lruEntry[V any] struct {
	addr netip.Addr
	val  V
}

func newLRU[V any](maxKeys int) *lru[V] {
	l := &lru[V]{seed: maphash.MakeSeed()}
	perShard := max(1, (maxKeys+lruShards-1)/lruShards)
	for i := range l.shards {
		l.shards[i].m = make(map[netip.Addr]*list.Element)
		l.shards[i].perShard = perShard
	}
	return l
}

// shardOf returns addr's shard, unlocked.
func (l *lru[V]) shardOf(addr netip.Addr) *lruShard[V] {
	return &l.shards[maphash.Comparable(l.seed, addr)%lruShards]
}

// each calls fn for every entry, one shard locked at a time.
func (l *lru[V]) each(fn func(addr netip.Addr, v *V)) {
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		for addr, e := range s.m {
			fn(addr, &e.Value.(*lruEntry[V]).val)
		}
		s.mu.Unlock()
	}
}

// len returns the number of entries.
func (l *lru[V]) len() int {
	n := 0
	for i := range l.shards {
		s := &l.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// get returns addr's value, marked most recently used, or nil.
func (s *lruShard[V]) get(addr netip.Addr) *V {
	e := s.m[addr]
	if e == nil {
		return nil
	}
	s.order.MoveToFront(e)
	return &e.Value.(*lruEntry[V]).val
}

// add returns addr's value; a zero one is added when addr has none, the least recently used
// entry dropped when the shard is full.
func (s *lruShard[V]) add(addr netip.Addr) *V {
	if v := s.get(addr); v != nil {
		return v
	}
	if len(s.m) >= s.perShard {
		if oldest := s.order.Back(); oldest != nil {
			delete(s.m, s.order.Remove(oldest).(*lruEntry[V]).addr)
		}
	}
	entry := &lruEntry[V]{addr: addr}
	s.m[addr] = s.order.PushFront(entry)
	return &entry.val
}

// remove drops addr.
func (s *lruShard[V]) remove(addr netip.Addr) {
	if e := s.m[addr]; e != nil {
		s.order.Remove(e)
		delete(s.m, addr)
	}
}
