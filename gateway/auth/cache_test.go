package auth

import (
	"context"
	"crypto/sha256"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/shopgate/gateway/identity"
)

// generations is a rotating KeySource whose generation a test moves, as a JWKS refresh does.
type generations struct{ gen atomic.Uint64 }

func (g *generations) Key(context.Context, *jwt.Token) (any, error) { return nil, errUnknownKID }
func (g *generations) generation() uint64                           { return g.gen.Load() }

// verifierOf is a verifier of a test source around keys.
func verifierOf(keys KeySource) *verifier {
	return newVerifier(Source{Name: "test"}, 0, nil, keys)
}

// len returns the number of entries, expired ones included. Only the tests count them.
func (c *tokenCache) len() int {
	n := 0
	for i := range c.shards {
		c.shards[i].mu.RLock()
		n += len(c.shards[i].m)
		c.shards[i].mu.RUnlock()
	}
	return n
}

func keyOf(s string) *cacheKey { k := cacheKey(sha256.Sum256([]byte(s))); return &k }

func TestTokenCache(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		run  func(t *testing.T, c *tokenCache, src *verifier, gens *generations)
	}{
		{"hit until exp, miss at exp", func(t *testing.T, c *tokenCache, src *verifier, _ *generations) {
			exp := now.Add(time.Minute)
			c.put(keyOf("a"), cacheEntry{id: identity.Identity{Subject: "alice"}, src: src}, now, exp)
			if id, ok := c.get(keyOf("a"), exp.Add(-time.Nanosecond)); !ok || id.Subject != "alice" {
				t.Fatalf("get before exp = %+v, %v", id, ok)
			}
			if _, ok := c.get(keyOf("a"), exp); ok {
				t.Fatal("served at exp")
			}
		}},
		{"max ttl bounds a long token", func(t *testing.T, c *tokenCache, src *verifier, _ *generations) {
			c.put(keyOf("a"), cacheEntry{src: src}, now, now.Add(24*time.Hour))
			if _, ok := c.get(keyOf("a"), now.Add(c.maxTTL)); ok {
				t.Fatal("served past max ttl")
			}
		}},
		{"expired token not stored", func(t *testing.T, c *tokenCache, src *verifier, _ *generations) {
			c.put(keyOf("a"), cacheEntry{src: src}, now, now.Add(-time.Second))
			if c.len() != 0 {
				t.Fatalf("len = %d", c.len())
			}
		}},
		{"key set change drops entries", func(t *testing.T, c *tokenCache, src *verifier, gens *generations) {
			c.put(keyOf("a"), cacheEntry{src: src, gen: gens.generation()}, now, now.Add(time.Minute))
			gens.gen.Add(1)
			if _, ok := c.get(keyOf("a"), now); ok {
				t.Fatal("served after a key set change")
			}
		}},
		{"other token misses", func(t *testing.T, c *tokenCache, src *verifier, _ *generations) {
			c.put(keyOf("a"), cacheEntry{src: src}, now, now.Add(time.Minute))
			if _, ok := c.get(keyOf("b"), now); ok {
				t.Fatal("hit for another token")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gens := &generations{}
			tt.run(t, newTokenCache(100, 5*time.Minute), verifierOf(gens), gens)
		})
	}
}

func TestTokenCacheIsBounded(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	for _, size := range []int{1, 10, 255, 1000, 10_000} {
		t.Run(strconv.Itoa(size), func(t *testing.T) {
			c := newTokenCache(size, time.Hour)
			src := verifierOf(&generations{})
			for i := range 3 * size {
				c.put(keyOf(strconv.Itoa(i)), cacheEntry{src: src}, now, now.Add(time.Duration(i+1)*time.Second))
			}
			limit := size
			if len(c.shards) > 1 {
				limit = len(c.shards) * c.perShard // shards round up
			}
			if n := c.len(); n > limit || n < size/2 {
				t.Fatalf("len = %d after %d puts, want at most %d (and not nearly empty)", n, 3*size, limit)
			}
			// The newest entry is always kept.
			last := strconv.Itoa(3*size - 1)
			if _, ok := c.get(keyOf(last), now); !ok {
				t.Fatal("the entry just put was evicted")
			}
		})
	}
}
