package httpcache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestMemoryBounds: the LRU never holds more than its entries or bytes, and evicts the least
// recently used first.
func TestMemoryBounds(t *testing.T) {
	ctx := context.Background()
	now := time.Unix(1000, 0)
	entry := func(n int) *Entry {
		return &Entry{Body: make([]byte, n), Stored: now, Expires: now.Add(time.Minute)}
	}
	t.Run("entries", func(t *testing.T) {
		m := newMemory(1<<20, 3)
		for i := range 5 {
			_, tok, _ := m.Get(ctx, fmt.Sprint(i), "/r", now)
			m.Put(ctx, fmt.Sprint(i), "/r", tok, entry(10))
			if i == 2 {
				m.Get(ctx, "0", "/r", now) // 0 is used again: 1 goes first
			}
		}
		if n, _ := m.len(); n != 3 {
			t.Fatalf("%d entries, want 3", n)
		}
		for key, want := range map[string]bool{"0": true, "1": false, "2": false, "3": true, "4": true} {
			if _, _, ok := m.Get(ctx, key, "/r", now); ok != want {
				t.Errorf("entry %s kept: %v, want %v", key, ok, want)
			}
		}
	})
	t.Run("bytes", func(t *testing.T) {
		m := newMemory(1000, 100)
		for i := range 10 {
			_, tok, _ := m.Get(ctx, fmt.Sprint(i), "/r", now)
			m.Put(ctx, fmt.Sprint(i), "/r", tok, entry(300))
		}
		if n, size := m.len(); size > 1000 || n != 2 {
			t.Fatalf("%d entries, %d bytes; want 2 entries within 1000 bytes", n, size)
		}
		_, tok, _ := m.Get(ctx, "big", "/r", now)
		m.Put(ctx, "big", "/r", tok, entry(5000)) // larger than the whole cache: not stored
		if _, _, ok := m.Get(ctx, "big", "/r", now); ok {
			t.Error("an entry over max_bytes was stored")
		}
	})
	t.Run("expiry and invalidation", func(t *testing.T) {
		m := newMemory(1<<20, 100)
		_, tok, _ := m.Get(ctx, "a", "/v1/orders/o-1", now)
		m.Put(ctx, "a", "/v1/orders/o-1", tok, entry(1))
		if _, _, ok := m.Get(ctx, "a", "/v1/orders/o-1", now.Add(time.Minute)); ok {
			t.Error("an expired entry was served")
		}
		_, tok, _ = m.Get(ctx, "a", "/v1/orders/o-1", now)
		m.Put(ctx, "a", "/v1/orders/o-1", tok, entry(1))
		m.Invalidate(ctx, []string{"/v1/orders/o-1", "/v1/orders"})
		if _, _, ok := m.Get(ctx, "a", "/v1/orders/o-1", now); ok {
			t.Error("an invalidated entry was served")
		}
		_, tok, _ = m.Get(ctx, "b", "/v1/orders/o-2", now)
		m.Invalidate(ctx, []string{"/v1/orders/o-2"}) // a write while b was fetched
		m.Put(ctx, "b", "/v1/orders/o-2", tok, entry(1))
		if _, _, ok := m.Get(ctx, "b", "/v1/orders/o-2", now); ok {
			t.Error("a fill that raced a write was stored")
		}
		if n, size := m.len(); n != 0 || size != 0 {
			t.Errorf("%d entries, %d bytes left", n, size)
		}
	})
}

func TestEntryEncoding(t *testing.T) {
	e := &Entry{ContentType: "application/json", ETag: `"abc"`, Body: []byte(`{"a":1}`), Stored: time.Unix(5, 6), Expires: time.Unix(7, 8), Gen: 42}
	got, err := decode(e.encode())
	if err != nil {
		t.Fatal(err)
	}
	if got.ContentType != e.ContentType || got.ETag != e.ETag || string(got.Body) != string(e.Body) || !got.Stored.Equal(e.Stored) || !got.Expires.Equal(e.Expires) || got.Gen != 42 {
		t.Errorf("decoded %+v, want %+v", got, e)
	}
	for _, bad := range [][]byte{nil, {0x80}, e.encode()[:5]} {
		if _, err := decode(bad); err == nil {
			t.Errorf("decode(%x) accepted a corrupt entry", bad)
		}
	}
}
