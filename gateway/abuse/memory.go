package abuse

import (
	"context"
	"net/netip"
	"time"
)

// Memory is the in-process Store: per address, the times of its recent failures (at most
// MaxFailures+1) and its block, in a bounded map whose least recently used address is forgotten
// when it is full. It starts no goroutine and needs no Close; it is safe for concurrent use.
//
// Memory bound: about 200 bytes per address plus 8 bytes per failure remembered. An address
// holds at most MaxFailures+1 failure times (then it is blocked and they are dropped), so with
// the defaults (100,000 addresses, 30 failures) the worst case is about 45 MB; an address spray
// makes Memory forget the addresses idle the longest, it does not make it grow.
type Memory struct {
	records *lru[record]
}

// record is one address's state.
type record struct {
	fails    []int64 // failure times (ns since the epoch) within the window, oldest first
	until    int64   // end of the block (ns since the epoch); 0 when never blocked
	failures int     // the failures that made the block
}

// NewMemory returns an in-memory store of at most maxKeys addresses (DefaultMaxKeys when 0 or
// less).
func NewMemory(maxKeys int) *Memory {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Memory{records: newLRU[record](maxKeys)}
}

// Len returns the number of addresses remembered.
func (m *Memory) Len() int { return m.records.len() }

// Fail implements Store.
func (m *Memory) Fail(_ context.Context, addr netip.Addr, now time.Time, lim Limits) (Block, bool, error) {
	t := now.UnixNano()
	s := m.records.shardOf(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.add(addr)
	if r.until > t {
		return r.block(addr), false, nil
	}
	// Keep the failures within (now-window, now], then add this one.
	cutoff := t - int64(lim.Window)
	keep := 0
	for keep < len(r.fails) && r.fails[keep] <= cutoff {
		keep++
	}
	r.fails = append(r.fails[:0], r.fails[keep:]...)
	if len(r.fails) == cap(r.fails) { // grow towards MaxFailures+1, never beyond what is needed
		grown := make([]int64, len(r.fails), max(len(r.fails)+1, min(2*len(r.fails)+4, lim.MaxFailures+1)))
		copy(grown, r.fails)
		r.fails = grown
	}
	r.fails = append(r.fails, t)
	if len(r.fails) <= lim.MaxFailures {
		return Block{Addr: addr, Failures: len(r.fails)}, false, nil
	}
	r.until = t + int64(lim.BlockFor)
	r.failures = len(r.fails)
	r.fails = nil
	return r.block(addr), true, nil
}

// Blocked implements Store. An address without a record costs one map lookup.
func (m *Memory) Blocked(_ context.Context, addr netip.Addr, now time.Time) (Block, bool, error) {
	s := m.records.shardOf(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.get(addr)
	if r == nil || r.until <= now.UnixNano() {
		return Block{}, false, nil
	}
	return r.block(addr), true, nil
}

// List implements Store.
func (m *Memory) List(_ context.Context, now time.Time) ([]Block, error) {
	t := now.UnixNano()
	var out []Block
	m.records.each(func(addr netip.Addr, r *record) {
		if r.until > t {
			out = append(out, r.block(addr))
		}
	})
	return out, nil
}

// Lift implements Store.
func (m *Memory) Lift(_ context.Context, addr netip.Addr, now time.Time) (bool, error) {
	s := m.records.shardOf(addr)
	s.mu.Lock()
	defer s.mu.Unlock()
	r := s.get(addr)
	if r == nil {
		return false, nil
	}
	blocked := r.until > now.UnixNano()
	s.remove(addr)
	return blocked, nil
}

func (r *record) block(addr netip.Addr) Block {
	return Block{Addr: addr, Until: time.Unix(0, r.until), Failures: r.failures}
}
