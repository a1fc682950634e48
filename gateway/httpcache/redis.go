package httpcache

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// retryAfterOutage is how long the Redis backend answers "miss" without asking Redis after a
// failed call: a dead Redis costs one request one timeout per interval, not every request.
const retryAfterOutage = time.Second

// redisStore keeps entries under prefix+"{"+resource+"}:e:"+sha256(key) and each resource's
// generation under prefix+"{"+resource+"}:g". An entry is current while its Gen equals its
// resource's generation. The resource is both keys' hash tag: on a Redis Cluster an entry and
// its generation share a slot, so that Get reads both with one MGET (a multi-key command
// refuses keys of several slots), while the resources spread over every slot.
type redisStore struct {
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
	logger  *slog.Logger
	now     func() time.Time

	downUntil atomic.Int64 // unix nanos; 0: up
}

func (s *redisStore) entryKey(key, resource string) string {
	sum := sha256.Sum256([]byte(key))
	return s.prefix + hashTag(resource) + ":e:" + hex.EncodeToString(sum[:])
}

func (s *redisStore) genKey(resource string) string { return s.prefix + hashTag(resource) + ":g" }

// hashTag is "{"+resource+"}". A resource is a path, so it starts with "/": Redis hashes what
// stands between the first "{" and the next "}" after it, which is then never empty, and is
// the same for both keys of a resource even when the resource holds braces itself (the prefix
// holds none: Validate).
func hashTag(resource string) string {
	if !strings.HasPrefix(resource, "/") {
		resource = "/" + resource // an empty tag would hash the whole key
	}
	return "{" + resource + "}"
}

// usable reports whether Redis may be asked now.
func (s *redisStore) usable() bool {
	until := s.downUntil.Load()
	return until == 0 || s.now().UnixNano() >= until
}

// failed records a failed call; the first failure of an outage is logged.
func (s *redisStore) failed(op string, err error) {
	if s.downUntil.Swap(s.now().Add(retryAfterOutage).UnixNano()) == 0 {
		s.logger.Warn("response cache: Redis unreachable, serving uncached", "op", op, "err", err)
	}
}

func (s *redisStore) ok() {
	if s.downUntil.Swap(0) != 0 {
		s.logger.Info("response cache: Redis reachable again")
	}
}

func (s *redisStore) Get(ctx context.Context, key, resource string, now time.Time) (*Entry, uint64, bool) {
	if !s.usable() {
		return nil, 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	vals, err := s.c.MGet(ctx, s.entryKey(key, resource), s.genKey(resource)).Result()
	if err != nil {
		if ctx.Err() == nil || ctx.Err() == context.DeadlineExceeded {
			s.failed("get", err)
		}
		return nil, 0, false
	}
	s.ok()
	var gen uint64
	if g, isStr := vals[1].(string); isStr {
		gen, _ = strconv.ParseUint(g, 10, 64)
	}
	raw, isStr := vals[0].(string)
	if !isStr {
		return nil, gen, false
	}
	e, err := decode([]byte(raw))
	if err != nil || e.Gen != gen || !now.Before(e.Expires) {
		return nil, gen, false
	}
	return e, gen, true
}

func (s *redisStore) Put(ctx context.Context, key, resource string, token uint64, e *Entry) {
	if !s.usable() {
		return
	}
	ttl := min(e.Expires.Sub(e.Stored), MaxTTL)
	if ttl <= 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	stored := *e
	stored.Gen = token
	if err := s.c.Set(ctx, s.entryKey(key, resource), stored.encode(), ttl).Err(); err != nil {
		s.failed("put", err)
		return
	}
	s.ok()
}

func (s *redisStore) Invalidate(ctx context.Context, resources []string) {
	if !s.usable() {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
	defer cancel()
	_, err := s.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, res := range resources {
			p.Incr(ctx, s.genKey(res))
			p.PExpire(ctx, s.genKey(res), MaxTTL)
		}
		return nil
	})
	if err != nil {
		s.failed("invalidate", err)
		return
	}
	s.ok()
}
