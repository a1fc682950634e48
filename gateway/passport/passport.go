// Package passport is the gateway's passport stage: the gRPC client interceptors that give
// every upstream call of a verified caller a passport, a short-lived token signed by the
// gateway that names the caller for the one service called, and nothing for an anonymous
// caller. Services verify it with the gateway's public keys (services/passport) and trust
// nothing else: identity metadata a client or anything inside the network sends itself is
// ignored there.
//
// The passport is a compact JWS (RFC 7515), alg EdDSA (Ed25519), kid in its header, under the
// metadata key MDPassport ("x-passport"). Its claims (Claims): iss Issuer, aud the full gRPC
// service name called (followed by the route's delegates, policy.Policy.Delegates: the
// services a front server calls on the caller's behalf with the same passport), sub the caller's subject, src its auth source, roles its roles (a JSON
// array: any Unicode, unambiguous), auth how it authenticated, iat, and exp iat + TTL.
//
// Signing costs tens of microseconds, about as much as the rest of the gateway's work on a
// request, so a passport is not signed per request: the stage keeps the passport it signed
// per caller (identity.Identity.Key) and audience, and signs again only once half of its life
// has passed, or when the signing key changed. A request with a warm cache costs a map lookup
// under a read lock. The request id is therefore not inside the passport: it travels beside
// it as x-request-id (the router forwards it), unsigned.
//
// Keys: the gateway signs with the newest key of a key folder (Config.KeyDir; ReadKeyDir)
// and looks at the folder again every Config.KeyCheckInterval. Services trust the JWK Set of
// the keys (JWKS, JWKSOf). Rotation: add the new key to the services' JWKS, wait until they
// read it, add it to the gateway's folder, and once TTL has passed remove the old key from
// both (the README gives the commands).
package passport

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
)

// Claims is the passport's payload.
type Claims struct {
	jwt.RegisteredClaims
	// Source is src: the auth source that verified the caller.
	Source string `json:"src"`
	// Roles is roles: the caller's roles, in the credential's order; [] when none.
	Roles []string `json:"roles"`
	// Auth is auth: how the caller authenticated ("jwt", "apikey").
	Auth string `json:"auth"`
}

// Options carries what the process provides. The zero value is usable.
type Options struct {
	// Logger receives key changes and key folder errors. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Signer signs passports and attaches them to upstream calls (Unary, Stream). Safe for
// concurrent use; it starts no goroutine (the key folder is looked at by a call that finds
// the check due).
type Signer struct {
	cfg   Config
	log   *slog.Logger
	now   func() time.Time
	ring  atomic.Pointer[keyring]
	check atomic.Int64 // unix nanoseconds: when the key folder is looked at again
	cache *cache
	signs atomic.Uint64
}

// keyring is the keys in use. Never modified once stored.
type keyring struct {
	signing Key
	keys    []Key
	jwks    []byte
	state   string // dirState of the folder they were read from
	gen     uint64 // changes when the signing key does: cached passports are signed again
}

// New returns the signer of cfg, with the keys of cfg.KeyDir (an error if it holds none), or
// a key made in memory when KeyDir is empty.
func New(cfg Config, opts Options) (*Signer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := &Signer{cfg: cfg, log: opts.Logger, now: opts.Now, cache: newCache(cfg.CacheSize)}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.now == nil {
		s.now = time.Now
	}
	if cfg.KeyDir == "" {
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("passport: generating key: %w", err)
		}
		k := newKey(priv, "")
		s.ring.Store(&keyring{signing: k, keys: []Key{k}, jwks: JWKS(k), gen: 1})
		s.check.Store(1<<63 - 1) // nothing to look at
		return s, nil
	}
	r, err := readRing(cfg.KeyDir, 1)
	if err != nil {
		return nil, fmt.Errorf("passport: %w", err)
	}
	s.ring.Store(r)
	s.check.Store(s.now().Add(cfg.KeyCheckInterval).UnixNano())
	s.log.Info("passport keys", slog.String("dir", cfg.KeyDir), slog.String("signing", r.signing.ID), slog.Int("keys", len(r.keys)))
	return s, nil
}

// readRing reads the keys of dir; the newest signs.
func readRing(dir string, gen uint64) (*keyring, error) {
	state, err := dirState(dir)
	if err != nil {
		return nil, err
	}
	keys, err := ReadKeyDir(dir)
	if err != nil {
		return nil, err
	}
	return &keyring{signing: keys[len(keys)-1], keys: keys, jwks: JWKS(keys...), state: state, gen: gen}, nil
}

// JWKS returns the JWK Set of the signer's keys, the one it signs with included.
func (s *Signer) JWKS() []byte { return s.ring.Load().jwks }

// SigningKeyID returns the kid of the key passports are signed with now.
func (s *Signer) SigningKeyID() string { return s.ring.Load().signing.ID }

// Signatures returns how many passports the signer has signed.
func (s *Signer) Signatures() uint64 { return s.signs.Load() }

// refreshKeys looks at the key folder when the check is due, and takes its keys when they
// changed. A folder that cannot be read, or holds a bad key or none, keeps the keys in use.
func (s *Signer) refreshKeys(now int64) {
	due := s.check.Load()
	if now < due || !s.check.CompareAndSwap(due, now+int64(s.cfg.KeyCheckInterval)) {
		return
	}
	old := s.ring.Load()
	state, err := dirState(s.cfg.KeyDir)
	if err == nil && state == old.state {
		return
	}
	gen := old.gen
	r, err := readRing(s.cfg.KeyDir, gen)
	if err != nil {
		s.log.Error("passport keys: keeping the keys in use", slog.String("dir", s.cfg.KeyDir), slog.Any("err", err))
		return
	}
	if r.signing.ID != old.signing.ID {
		r.gen = gen + 1
	}
	s.ring.Store(r)
	s.log.Info("passport keys changed", slog.String("dir", s.cfg.KeyDir), slog.String("signing", r.signing.ID), slog.Int("keys", len(r.keys)))
}

// Sign returns a new passport of id for the services aud (the service called first, then the
// services it may pass the passport on to), signed with the signing key.
func (s *Signer) Sign(id identity.Identity, aud ...string) (string, error) {
	return s.sign(s.ring.Load(), id, aud, s.now())
}

func (s *Signer) sign(r *keyring, id identity.Identity, aud []string, now time.Time) (string, error) {
	roles := id.Roles
	if roles == nil {
		roles = []string{}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, Claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    Issuer,
			Subject:   id.Subject,
			Audience:  jwt.ClaimStrings(aud),
			IssuedAt:  jwt.NewNumericDate(now),
			ExpiresAt: jwt.NewNumericDate(now.Add(s.cfg.TTL)),
		},
		Source: id.Source,
		Roles:  roles,
		Auth:   string(id.Method),
	})
	t.Header["kid"] = r.signing.ID
	tok, err := t.SignedString(r.signing.Private)
	if err != nil {
		return "", fmt.Errorf("signing passport: %w", err)
	}
	s.signs.Add(1)
	return tok, nil
}

// pairs returns the passport metadata of id for the audience aud (audKey: its cache key): the
// cached one while less than half of its life has passed and its key still signs, else a new
// one. aud is called only to sign.
func (s *Signer) pairs(id identity.Identity, audKey string, aud func() []string) ([]string, error) {
	now := s.now()
	ns := now.UnixNano()
	s.refreshKeys(ns)
	r := s.ring.Load()
	k := cacheKey{id: id.Key(), aud: audKey}
	if e, ok := s.cache.get(k); ok && ns < e.renew && e.gen == r.gen {
		return e.pairs, nil
	}
	tok, err := s.sign(r, id, aud(), now)
	if err != nil {
		return nil, err
	}
	e := entry{pairs: []string{MDPassport, tok}, renew: ns + int64(s.cfg.TTL/2), gen: r.gen}
	s.cache.put(k, e, ns)
	return e.pairs, nil
}

// service returns the service of a full method name: "pkg.Service" of "/pkg.Service/Method".
func service(method string) string {
	method = strings.TrimPrefix(method, "/")
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		return method[:i]
	}
	return method
}

// attach returns ctx with the verified caller's passport for method's service appended to its
// outgoing metadata; ctx itself for an anonymous caller. When the call's route (policy.Route,
// in ctx) is of that service and names delegates, the passport's aud names them too.
func (s *Signer) attach(ctx context.Context, method string) (context.Context, error) {
	id, ok := identity.FromContext(ctx)
	if !ok || id.Anonymous() {
		return ctx, nil
	}
	svc := service(method)
	audKey, aud := svc, func() []string { return []string{svc} }
	if rt := policy.FromContext(ctx); rt != nil && len(rt.Policy.Delegates) > 0 && rt.Service == svc {
		all := rt.Audience()
		audKey, aud = strings.Join(all, " "), func() []string { return all }
	}
	pairs, err := s.pairs(id, audKey, aud)
	if err != nil {
		return ctx, status.Error(codes.Internal, "passport: "+err.Error())
	}
	return metadata.AppendToOutgoingContext(ctx, pairs...), nil
}

// Unary is the passport stage for unary calls.
func (s *Signer) Unary(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, err := s.attach(ctx, method)
	if err != nil {
		return err
	}
	return invoker(ctx, method, req, reply, cc, opts...)
}

// Stream is the passport stage for streaming calls.
func (s *Signer) Stream(ctx context.Context, desc *grpc.StreamDesc, cc *grpc.ClientConn, method string, streamer grpc.Streamer, opts ...grpc.CallOption) (grpc.ClientStream, error) {
	ctx, err := s.attach(ctx, method)
	if err != nil {
		return nil, err
	}
	return streamer(ctx, desc, cc, method, opts...)
}

// cacheKey names a caller's passport for one audience: the service called, followed by its
// delegates when it has any (space-separated; service names hold no space).
type cacheKey struct{ id, aud string }

// entry is one signed passport.
type entry struct {
	pairs []string // MDPassport and the token
	renew int64    // unix nanoseconds: when it is signed again (half its life)
	gen   uint64   // the keyring generation that signed it
}

// cache is a bounded map of signed passports in shards, so that concurrent hits take
// different read locks. A full shard evicts the entry due soonest among a few sampled (map
// order is random).
type cache struct {
	shards   []cacheShard
	perShard int
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[cacheKey]entry
}

const (
	cacheShards = 16
	evictSample = 8
)

func newCache(size int) *cache {
	n := cacheShards
	if size < 256 {
		n = 1
	}
	c := &cache{shards: make([]cacheShard, n), perShard: (size + n - 1) / n}
	for i := range c.shards {
		c.shards[i].m = make(map[cacheKey]entry)
	}
	return c
}

func (c *cache) shard(k cacheKey) *cacheShard {
	if len(c.shards) == 1 {
		return &c.shards[0]
	}
	// FNV-1a over the tail of the identity key (its roles and subject differ most there) and
	// the audience's length: cheap, and spreads callers over the shards.
	h := uint32(2166136261)
	id := k.id
	if len(id) > 16 {
		id = id[len(id)-16:]
	}
	for i := 0; i < len(id); i++ {
		h = (h ^ uint32(id[i])) * 16777619
	}
	h = (h ^ uint32(len(k.aud))) * 16777619
	return &c.shards[h%uint32(len(c.shards))]
}

func (c *cache) get(k cacheKey) (entry, bool) {
	s := c.shard(k)
	s.mu.RLock()
	e, ok := s.m[k]
	s.mu.RUnlock()
	return e, ok
}

func (c *cache) put(k cacheKey, e entry, now int64) {
	s := c.shard(k)
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.m[k]; !ok && len(s.m) >= c.perShard {
		var victim cacheKey
		soonest := int64(1<<63 - 1)
		seen := 0
		for vk, ve := range s.m {
			if ve.renew <= now {
				victim = vk
				break
			}
			if ve.renew < soonest {
				victim, soonest = vk, ve.renew
			}
			if seen++; seen == evictSample {
				break
			}
		}
		delete(s.m, victim)
	}
	s.m[k] = e
}

// len returns how many passports the cache holds.
func (c *cache) len() int {
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
