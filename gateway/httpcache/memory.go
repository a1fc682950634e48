package httpcache

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// memory is an LRU of entries bounded by bytes and count. Invalidation drops the entries of
// a resource (an index by resource); seq counts invalidations, and a Put whose Get saw
// another seq is dropped: its answer may predate the write.
type memory struct {
	maxBytes   int64
	maxEntries int

	mu    sync.Mutex
	ll    *list.List // front: most recently used
	items map[string]*list.Element
	byRes map[string]map[string]struct{}
	bytes int64
	seq   uint64
}

type memItem struct {
	key, resource string
	e             *Entry
}

func newMemory(maxBytes int64, maxEntries int) *memory {
	return &memory{maxBytes: maxBytes, maxEntries: maxEntries, ll: list.New(), items: map[string]*list.Element{}, byRes: map[string]map[string]struct{}{}}
}

func (m *memory) Get(_ context.Context, key, _ string, now time.Time) (*Entry, uint64, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, m.seq, false
	}
	it := el.Value.(*memItem)
	if !now.Before(it.e.Expires) {
		m.remove(el)
		return nil, m.seq, false
	}
	m.ll.MoveToFront(el)
	return it.e, m.seq, true
}

func (m *memory) Put(_ context.Context, key, resource string, token uint64, e *Entry) {
	size := e.size(key)
	m.mu.Lock()
	defer m.mu.Unlock()
	if token != m.seq || size > m.maxBytes {
		return
	}
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	el := m.ll.PushFront(&memItem{key: key, resource: resource, e: e})
	m.items[key] = el
	keys := m.byRes[resource]
	if keys == nil {
		keys = map[string]struct{}{}
		m.byRes[resource] = keys
	}
	keys[key] = struct{}{}
	m.bytes += size
	for m.bytes > m.maxBytes || m.ll.Len() > m.maxEntries {
		m.remove(m.ll.Back())
	}
}

func (m *memory) Invalidate(_ context.Context, resources []string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seq++
	for _, res := range resources {
		for key := range m.byRes[res] {
			m.remove(m.items[key])
		}
	}
}

// remove drops el; m.mu is held.
func (m *memory) remove(el *list.Element) {
	it := el.Value.(*memItem)
	m.ll.Remove(el)
	delete(m.items, it.key)
	if keys := m.byRes[it.resource]; keys != nil {
		delete(keys, it.key)
		if len(keys) == 0 {
			delete(m.byRes, it.resource)
		}
	}
	m.bytes -= it.e.size(it.key)
}

// len and size report the LRU's occupation (tests).
func (m *memory) len() (int, int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ll.Len(), m.bytes
}
