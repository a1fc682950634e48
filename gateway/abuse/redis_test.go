package abuse

import (
	"testing"
)

func TestRedisStore(t *testing.T) {
	t.Parallel()
	addr := needRedis(t)
	testStore(t, func(t *testing.T) Store {
		cfg, err := Config{Backend: BackendRedis, Redis: RedisConfig{Addr: addr, KeyPrefix: testPrefix(t)}}.withDefaults()
		if err != nil {
			t.Fatal(err)
		}
		r := NewRedis(cfg.Redis, "")
		t.Cleanup(func() { _ = r.Close() })
		return r
	})
}
