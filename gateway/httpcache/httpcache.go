package httpcache

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/redisclient"
	"github.com/redis/go-redis/v9"
)

// The headers of a cached route's answers.
const (
	// HeaderXCache says whether the answer came from the response cache: HIT or MISS.
	HeaderXCache = "X-Cache"
	// HeaderAge is the age in seconds of an answer served from the cache.
	HeaderAge = "Age"
)

// Stage is the cache stage of one configuration: ETags, conditional GETs and Cache-Control
// on every GET answer, and the response cache of the routes that opt in.
type Stage struct {
	store  Store // nil when no route is cached: writes then invalidate nothing
	now    func() time.Time
	client redis.UniversalClient // the Redis backend's, closed by Close
}

// New returns the stage of cfg. cached says whether some route has a cache TTL: without one
// no store is made (and no Redis client).
func New(cfg Config, cached bool, opts Options) (*Stage, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Stage{now: opts.Now}
	if s.now == nil {
		s.now = time.Now
	}
	if !cached {
		return s, nil
	}
	switch cfg.Backend {
	case BackendRedis:
		logger := opts.Logger
		if logger == nil {
			logger = slog.Default()
		}
		s.client = redisclient.New(cfg.Redis.Config)
		s.store = &redisStore{c: s.client, prefix: cfg.Redis.KeyPrefix, timeout: cfg.Redis.Timeout, logger: logger, now: s.now}
	default:
		s.store = newMemory(cfg.MaxBytes, cfg.MaxEntries)
	}
	return s, nil
}

// Close releases the Redis client, if any.
func (s *Stage) Close() error {
	if s.client != nil {
		if err := s.client.Close(); err != nil {
			return fmt.Errorf("closing the response cache's redis client: %w", err)
		}
	}
	return nil
}

// Middleware tags GET answers, serves and fills the response cache of the routes that have
// one, and invalidates it on writes (see the package doc). Streams pass untouched.
func (s *Stage) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := policy.FromContext(r.Context())
		if rt == nil || rt.ServerStreaming {
			next.ServeHTTP(w, r)
			return
		}
		switch r.Method {
		case http.MethodGet:
			if s.store != nil && rt.Policy.Cache.TTL > 0 {
				s.serveCached(w, r, rt, next)
				return
			}
			t := taggers.Get().(*tagger)
			*t = tagger{ResponseWriter: w, r: r, rt: rt}
			next.ServeHTTP(t, r)
			*t = tagger{}
			taggers.Put(t)
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			if s.store == nil {
				next.ServeHTTP(w, r)
				return
			}
			next.ServeHTTP(&invalidator{ResponseWriter: w, r: r, store: s.store}, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

var taggers = sync.Pool{New: func() any { return new(tagger) }}

// serveCached answers a GET of a cached route from the store, or forwards it and stores the
// answer.
func (s *Stage) serveCached(w http.ResponseWriter, r *http.Request, rt *policy.Route, next http.Handler) {
	noCache, noStore := requestDirectives(r.Header.Values("Cache-Control"))
	key := Key(r, rt)
	res := Resource(r.URL.Path)
	now := s.now()
	var token uint64
	if !noStore {
		e, tok, ok := s.store.Get(r.Context(), key, res, now)
		if ok && !noCache {
			writeHit(w, r, rt, e, now)
			return
		}
		token = tok
	}
	w.Header().Set(HeaderXCache, "MISS")
	t := &tagger{ResponseWriter: w, r: r, rt: rt}
	if !noStore {
		ctx := r.Context()
		t.fill = func(contentType, etag string, body []byte) {
			s.store.Put(ctx, key, res, token, &Entry{ContentType: contentType, ETag: etag, Body: bytes.Clone(body), Stored: now, Expires: now.Add(min(rt.Policy.Cache.TTL, MaxTTL))})
		}
	}
	next.ServeHTTP(t, r)
}

// Key is the response cache's key of a GET of rt: the route, the path, the query parameters
// sorted by name and, unless the route is public, the caller's identity key.
func Key(r *http.Request, rt *policy.Route) string {
	caller := ""
	if rt.Policy.Auth != policy.AuthNone {
		if id, ok := identity.FromContext(r.Context()); ok {
			caller = id.Key()
		}
	}
	return rt.RPC + "\x00" + r.URL.EscapedPath() + "\x00" + r.URL.Query().Encode() + "\x00" + caller
}

// requestDirectives reads a request's Cache-Control: no-cache (do not answer from the cache)
// and no-store (neither read nor fill it).
func requestDirectives(values []string) (noCache, noStore bool) {
	for _, v := range values {
		for d := range strings.SplitSeq(v, ",") {
			d, _, _ = strings.Cut(d, "=")
			switch strings.ToLower(strings.TrimSpace(d)) {
			case "no-cache":
				noCache = true
			case "no-store":
				noStore = true
			}
		}
	}
	return noCache, noStore
}

// writeHit answers from e: 304 when the client's tag matches, else e's body.
func writeHit(w http.ResponseWriter, r *http.Request, rt *policy.Route, e *Entry, now time.Time) {
	h := w.Header()
	h.Set("ETag", e.ETag)
	h.Set("Cache-Control", CacheControl(rt))
	h.Set(HeaderXCache, "HIT")
	h.Set(HeaderAge, strconv.FormatInt(max(int64(now.Sub(e.Stored)/time.Second), 0), 10))
	if inm := r.Header["If-None-Match"]; len(inm) > 0 && NoneMatch(inm, e.ETag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Type", e.ContentType)
	h.Set("Content-Length", strconv.Itoa(len(e.Body)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(e.Body)
}

// tagger tags the one Write of a unary 200 answer (grpc-gateway writes the whole body at
// once, its headers set, with no explicit WriteHeader); an explicit WriteHeader (an error, a
// fallback) turns it into a plain pass-through.
type tagger struct {
	http.ResponseWriter
	r    *http.Request
	rt   *policy.Route
	done bool
	fill func(contentType, etag string, body []byte) // the cached route's store; nil: none
}

func (t *tagger) WriteHeader(code int) {
	t.done = true
	t.ResponseWriter.WriteHeader(code)
}

func (t *tagger) Write(b []byte) (int, error) {
	if t.done {
		return t.ResponseWriter.Write(b)
	}
	t.done = true
	h := t.Header()
	ev := etagValue(b)
	etag := ev[0]
	h["Etag"] = ev
	h["Cache-Control"] = cacheControlValue(t.rt)
	if t.fill != nil {
		t.fill(h.Get("Content-Type"), etag, b)
	}
	if inm := t.r.Header["If-None-Match"]; len(inm) > 0 && NoneMatch(inm, etag) {
		h.Del("Content-Length")
		h.Del("Content-Type")
		t.ResponseWriter.WriteHeader(http.StatusNotModified)
		return len(b), nil
	}
	return t.ResponseWriter.Write(b)
}

// Unwrap gives http.ResponseController the writer below.
func (t *tagger) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// invalidator invalidates the write's resources as soon as its answer turns out 2xx, before
// the answer is sent: a client that saw the write succeed never reads the old answer after it.
type invalidator struct {
	http.ResponseWriter
	r     *http.Request
	store Store
	done  bool
}

func (v *invalidator) WriteHeader(code int) {
	v.status(code)
	v.ResponseWriter.WriteHeader(code)
}

func (v *invalidator) Write(b []byte) (int, error) {
	v.status(http.StatusOK)
	return v.ResponseWriter.Write(b)
}

func (v *invalidator) status(code int) {
	if v.done {
		return
	}
	v.done = true
	if code >= 200 && code < 300 {
		v.store.Invalidate(context.WithoutCancel(v.r.Context()), Resources(v.r.URL.Path))
	}
}

// Unwrap gives http.ResponseController the writer below.
func (v *invalidator) Unwrap() http.ResponseWriter { return v.ResponseWriter }
