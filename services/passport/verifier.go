package passport

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// The defaults of Options.
const (
	// DefaultLeeway is the clock skew allowed on a passport's exp and iat.
	DefaultLeeway = 10 * time.Second
	// DefaultRefreshInterval is how often Options.JWKSFile is read again.
	DefaultRefreshInterval = 5 * time.Second
	// DefaultCacheSize is how many verified passports are kept.
	DefaultCacheSize = 10_000
	// unknownKIDInterval is the shortest time between two reads of the JWKS file caused by a
	// passport whose kid is not trusted (yet).
	unknownKIDInterval = time.Second
)

// Options configures NewVerifier. Exactly one of JWKS and JWKSFile is required.
type Options struct {
	// JWKS is the JWK Set of the trusted keys (gateway/passport.JWKS), fixed.
	JWKS []byte
	// JWKSFile holds the JWK Set of the trusted keys. It is read again every RefreshInterval,
	// and at once (at most once a second) when a passport names a kid it lacks; a change
	// takes effect then. A file that cannot be read or parsed keeps the keys in use.
	JWKSFile string
	// RefreshInterval is how often JWKSFile is read again. Default: DefaultRefreshInterval (5s).
	RefreshInterval time.Duration
	// Leeway is the clock skew allowed on exp and iat. Default: DefaultLeeway (10s).
	Leeway time.Duration
	// CacheSize bounds how many verified passports are kept. Default: DefaultCacheSize (10000).
	CacheSize int
	// Logger receives key changes and JWKS file errors. Default: slog.Default().
	Logger *slog.Logger
	// Now is the clock. Default: time.Now.
	Now func() time.Time
}

// Verifier verifies passports against a trusted JWK Set. Safe for concurrent use; it starts
// no goroutine (the JWKS file is read again by a call that finds it due).
type Verifier struct {
	opts    Options
	keys    atomic.Pointer[keySet]
	due     atomic.Int64 // unix nanoseconds: when JWKSFile is read again
	mu      sync.Mutex   // one read of the file at a time
	unknown int64        // unix nanoseconds: when an unknown kid may cause a read; under mu
	cache   verified
}

// keySet is the trusted keys. Never modified once stored.
type keySet struct {
	keys map[string]ed25519.PublicKey
	raw  []byte
	gen  uint64 // changes with the keys: cached passports are verified again
}

// NewVerifier returns a verifier trusting the keys of opts.JWKS or opts.JWKSFile.
func NewVerifier(opts Options) (*Verifier, error) {
	if (opts.JWKS == nil) == (opts.JWKSFile == "") {
		return nil, errors.New("passport verifier: want one of a JWKS and a JWKS file")
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = DefaultRefreshInterval
	}
	if opts.Leeway <= 0 {
		opts.Leeway = DefaultLeeway
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	v := &Verifier{opts: opts, cache: verified{max: opts.CacheSize, m: map[string]verifiedEntry{}}}
	raw := opts.JWKS
	if opts.JWKSFile != "" {
		var err error
		if raw, err = os.ReadFile(opts.JWKSFile); err != nil {
			return nil, fmt.Errorf("passport verifier: %w", err)
		}
	}
	keys, err := ParseJWKS(raw)
	if err != nil {
		return nil, fmt.Errorf("passport verifier: %w", err)
	}
	v.keys.Store(&keySet{keys: keys, raw: raw, gen: 1})
	v.due.Store(opts.Now().Add(opts.RefreshInterval).UnixNano())
	return v, nil
}

// KeyIDs returns the kids of the trusted keys, sorted.
func (v *Verifier) KeyIDs() []string {
	ks := v.keys.Load().keys
	ids := make([]string, 0, len(ks))
	for id := range ks {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// reload reads JWKSFile again and takes its keys when they changed.
func (v *Verifier) reload() {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.reloadLocked()
}

// reloadLocked is reload with v.mu held.
func (v *Verifier) reloadLocked() {
	raw, err := os.ReadFile(v.opts.JWKSFile)
	old := v.keys.Load()
	if err == nil && bytes.Equal(raw, old.raw) {
		return
	}
	var keys map[string]ed25519.PublicKey
	if err == nil {
		keys, err = ParseJWKS(raw)
	}
	if err != nil {
		v.opts.Logger.Error("passport keys: keeping the keys in use", slog.String("file", v.opts.JWKSFile), slog.Any("err", err))
		return
	}
	v.keys.Store(&keySet{keys: keys, raw: raw, gen: old.gen + 1})
	v.opts.Logger.Info("passport keys changed", slog.String("file", v.opts.JWKSFile), slog.Any("kids", v.KeyIDs()))
}

// Watch reads JWKSFile again every RefreshInterval until ctx ends, so that an idle service
// takes (and logs) a key change too; calls do it on their own otherwise. It returns at once
// without a JWKSFile. Run it in a goroutine.
func (v *Verifier) Watch(ctx context.Context) {
	if v.opts.JWKSFile == "" {
		return
	}
	t := time.NewTicker(v.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			v.refresh(v.opts.Now().UnixNano())
		}
	}
}

// refresh reads JWKSFile again when it is due.
func (v *Verifier) refresh(now int64) {
	if v.opts.JWKSFile == "" {
		return
	}
	due := v.due.Load()
	if now < due || !v.due.CompareAndSwap(due, now+int64(v.opts.RefreshInterval)) {
		return
	}
	v.reload()
}

// claims is the passport's payload.
type claims struct {
	jwt.RegisteredClaims
	Source string   `json:"src"`
	Roles  []string `json:"roles"`
	Auth   string   `json:"auth"`
}

// errInvalid is the one answer to any bad passport; the reason goes to the log only.
var errInvalid = status.Error(codes.Unauthenticated, "invalid passport")

// Verify returns the caller a passport names for service (a full gRPC service name), or an
// error when it is not a valid passport for it.
func (v *Verifier) Verify(token, service string) (Caller, error) {
	now := v.opts.Now()
	ns := now.UnixNano()
	v.refresh(ns)
	ks := v.keys.Load()
	if e, ok := v.cache.get(token); ok && e.gen == ks.gen && ns < e.until {
		if !slices.Contains(e.aud, service) {
			return Caller{}, fmt.Errorf("passport for %q, not %q", e.aud, service)
		}
		return e.caller, nil
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, v.keyFunc,
		jwt.WithValidMethods([]string{Algorithm}), jwt.WithIssuer(Issuer), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(v.opts.Leeway), jwt.WithTimeFunc(v.opts.Now))
	if err != nil {
		return Caller{}, fmt.Errorf("passport: %w", err)
	}
	if c.Subject == "" {
		return Caller{}, errors.New("passport: no sub")
	}
	caller := Caller{Subject: c.Subject, Roles: slices.Clip(c.Roles), Auth: c.Auth, Source: c.Source}
	v.cache.put(token, verifiedEntry{caller: caller, aud: c.Audience, until: c.ExpiresAt.Add(v.opts.Leeway).UnixNano(), gen: ks.gen}, ns)
	if !slices.Contains(c.Audience, service) {
		return Caller{}, fmt.Errorf("passport for %q, not %q", c.Audience, service)
	}
	return caller, nil
}

// keyFunc finds the trusted key a passport's kid names; an unknown kid reads the JWKS file
// again first (at most once a second), so a key the gateway has just started to use is found.
func (v *Verifier) keyFunc(t *jwt.Token) (any, error) {
	if _, ok := t.Header["crit"]; ok {
		return nil, errors.New("crit header not supported")
	}
	kid, _ := t.Header["kid"].(string)
	if kid == "" {
		return nil, errors.New("no kid")
	}
	if k, ok := v.keys.Load().keys[kid]; ok {
		return k, nil
	}
	if v.opts.JWKSFile != "" {
		// Under the lock, so that a call finding the kid unknown while another call's read
		// is about to start waits for that read, not just for the one under way.
		v.mu.Lock()
		defer v.mu.Unlock()
		if k, ok := v.keys.Load().keys[kid]; ok { // a read while this call waited found it
			return k, nil
		}
		if now := v.opts.Now().UnixNano(); now >= v.unknown {
			v.unknown = now + int64(unknownKIDInterval)
			v.reloadLocked()
		}
		if k, ok := v.keys.Load().keys[kid]; ok {
			return k, nil
		}
	}
	return nil, fmt.Errorf("unknown kid %q", kid)
}

// check verifies the passport of an incoming call to fullMethod, if it has one, and returns
// ctx with its caller.
func (v *Verifier) check(ctx context.Context, fullMethod string) (context.Context, error) {
	toks := metadata.ValueFromIncomingContext(ctx, MDPassport)
	switch len(toks) {
	case 0:
		return ctx, nil
	case 1:
	default:
		v.opts.Logger.Warn("passport refused", slog.String("method", fullMethod), slog.String("reason", "sent more than once"))
		return ctx, errInvalid
	}
	c, err := v.Verify(toks[0], service(fullMethod))
	if err != nil {
		v.opts.Logger.Warn("passport refused", slog.String("method", fullMethod), slog.Any("reason", err))
		return ctx, errInvalid
	}
	return NewContext(ctx, c), nil
}

// service returns the service of a full method name: "pkg.Service" of "/pkg.Service/Method".
func service(method string) string {
	method = strings.TrimPrefix(method, "/")
	if i := strings.LastIndexByte(method, '/'); i >= 0 {
		return method[:i]
	}
	return method
}

// UnaryServerInterceptor verifies the passport of each unary call (see the package doc).
func (v *Verifier) UnaryServerInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := v.check(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamServerInterceptor verifies the passport of each streaming call.
func (v *Verifier) StreamServerInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := v.check(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &stream{ServerStream: ss, ctx: ctx})
	}
}

type stream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *stream) Context() context.Context { return s.ctx }

// ParseJWKS returns the Ed25519 keys of a JWK Set by kid. Every key must be an OKP Ed25519
// key with a unique kid (alg, when present, EdDSA; use, when present, sig), and there must be
// at least one.
func ParseJWKS(raw []byte) (map[string]ed25519.PublicKey, error) {
	var set struct {
		Keys []struct {
			Kty string `json:"kty"`
			Crv string `json:"crv"`
			X   string `json:"x"`
			Kid string `json:"kid"`
			Alg string `json:"alg"`
			Use string `json:"use"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("parsing jwks: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("parsing jwks: no key")
	}
	keys := make(map[string]ed25519.PublicKey, len(set.Keys))
	for i, k := range set.Keys {
		x, err := base64.RawURLEncoding.DecodeString(k.X)
		switch {
		case k.Kty != "OKP" || k.Crv != "Ed25519":
			err = fmt.Errorf("kty %q crv %q, want OKP Ed25519", k.Kty, k.Crv)
		case err != nil || len(x) != ed25519.PublicKeySize:
			err = errors.New("x is not a base64url Ed25519 public key")
		case k.Kid == "":
			err = errors.New("no kid")
		case keys[k.Kid] != nil:
			err = fmt.Errorf("kid %q twice", k.Kid)
		case k.Alg != "" && k.Alg != Algorithm, k.Use != "" && k.Use != "sig":
			err = fmt.Errorf("alg %q use %q, want EdDSA sig", k.Alg, k.Use)
		}
		if err != nil {
			return nil, fmt.Errorf("parsing jwks: key %d: %w", i, err)
		}
		keys[k.Kid] = ed25519.PublicKey(x)
	}
	return keys, nil
}

// verified is the bounded map of verified passports, by token.
type verified struct {
	mu  sync.RWMutex
	max int
	m   map[string]verifiedEntry
}

type verifiedEntry struct {
	caller Caller
	aud    []string
	until  int64  // unix nanoseconds: exp plus the leeway
	gen    uint64 // the key set generation that verified it
}

func (c *verified) get(token string) (verifiedEntry, bool) {
	c.mu.RLock()
	e, ok := c.m[token]
	c.mu.RUnlock()
	return e, ok
}

// put keeps e; when the map is full, the expired entries go, and if that frees less than a
// sixteenth of it, arbitrary ones (map order is random) until it does, so that the next puts
// find room without looking again.
func (c *verified) put(token string, e verifiedEntry, now int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for t, old := range c.m {
			if old.until <= now {
				delete(c.m, t)
			}
		}
		for t := range c.m {
			if len(c.m) < c.max-c.max/16 {
				break
			}
			delete(c.m, t)
		}
	}
	c.m[token] = e
}
