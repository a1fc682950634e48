package auth

import (
	"crypto/sha256"
	"encoding/hex"
	"slices"
	"strconv"
	"testing"
	"time"
)

// TestAPIKeyLookupIsConstantTime: with many keys configured, a lookup takes as long whether the
// key is the first, the last or none of them (a lookup that stopped at its match would be
// hundreds of times faster for the first). Medians of interleaved rounds keep the test stable
// on a busy machine.
func TestAPIKeyLookupIsConstantTime(t *testing.T) {
	t.Parallel()
	const n = 1000
	cfg := make([]APIKey, n)
	for i := range cfg {
		cfg[i] = APIKey{SHA256: sha256HexOf("key-" + strconv.Itoa(i)), Subject: "s" + strconv.Itoa(i)}
	}
	keys := newAPIKeys(cfg)
	cases := []string{"key-0", "key-" + strconv.Itoa(n-1), "key-none"}
	for i, k := range cases[:2] {
		if id, ok := keys.lookup(k); !ok || id.Subject != APIKeyNamespace+"|"+cfg[i*(n-1)].Subject {
			t.Fatalf("lookup(%s) = %+v, %v", k, id, ok)
		}
	}
	const rounds = 51
	times := make([][]time.Duration, len(cases))
	for range rounds {
		for c, k := range cases {
			start := time.Now()
			for range 4 {
				keys.lookup(k)
			}
			times[c] = append(times[c], time.Since(start))
		}
	}
	medians := make([]time.Duration, len(cases))
	for c := range cases {
		slices.Sort(times[c])
		medians[c] = times[c][rounds/2]
	}
	lo, hi := slices.Min(medians), slices.Max(medians)
	if hi > 3*lo {
		t.Fatalf("median lookup times first/last/none = %v: differ by more than 3x", medians)
	}
}

func TestAPIKeyLookupFindsEveryPosition(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, 2, 7} {
		cfg := make([]APIKey, n)
		for i := range cfg {
			cfg[i] = APIKey{SHA256: sha256HexOf("key-" + strconv.Itoa(i)), Subject: "s" + strconv.Itoa(i)}
		}
		keys := newAPIKeys(cfg)
		for i := range n {
			t.Run(strconv.Itoa(n)+"/"+strconv.Itoa(i), func(t *testing.T) {
				if id, ok := keys.lookup("key-" + strconv.Itoa(i)); !ok || id.Subject != APIKeyNamespace+"|"+cfg[i].Subject {
					t.Fatalf("lookup = %+v, %v; want %s", id, ok, cfg[i].Subject)
				}
				if _, ok := keys.lookup("key-" + strconv.Itoa(i) + "x"); ok {
					t.Fatal("found a key that is not configured")
				}
			})
		}
	}
}

func sha256HexOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
