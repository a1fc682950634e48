package auth

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/shopgate/gateway/edge"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/policy"
)

// HeaderAPIKey is the header that carries an API key.
const HeaderAPIKey = "X-API-Key"

// Authenticator is the auth stage: it authenticates the caller of a routed request,
// authorizes it against the route's roles and stores the verified identity in the request's
// context (identity.NewContext). Safe for concurrent use.
type Authenticator struct {
	now       func() time.Time
	log       *slog.Logger
	maxHeader int // the longest Authorization value read: "Bearer " + MaxTokenBytes
	byIssuer  map[string]*verifier
	apiKeys   *apiKeys
	cache     *tokenCache // nil when disabled
	m         *metrics
	closeOnce sync.Once
}

// New validates cfg and builds the stage. It reads the key files and makes the first fetch of
// each JWKS URL (bounded by its fetch timeout; a failure is logged, not returned). An invalid
// cfg is refused with all of its problems at once. Every error starts with "creating
// authenticator: ". Call Close when done.
func New(cfg Config, opts Options) (*Authenticator, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("creating authenticator: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	m, err := newMetrics(opts.Registerer)
	if err != nil {
		return nil, fmt.Errorf("creating authenticator: registering metrics: %w", err)
	}
	a := &Authenticator{
		now:       opts.Clock,
		log:       opts.Logger,
		maxHeader: len(bearerPrefix) + cfg.MaxTokenBytes,
		byIssuer:  make(map[string]*verifier, len(cfg.Sources)),
		apiKeys:   newAPIKeys(cfg.APIKeys),
		m:         m,
	}
	if !cfg.Cache.Disabled {
		a.cache = newTokenCache(cfg.Cache.Size, cfg.Cache.MaxTTL)
	}
	for i, s := range cfg.Sources {
		keys, err := newKeySource(s, opts, m)
		if err != nil {
			_ = a.Close()
			return nil, fmt.Errorf("creating authenticator: source %d (%s): %w", i, s.Name, err)
		}
		a.byIssuer[s.Issuer] = newVerifier(s, cfg.Leeway, opts.Clock, keys)
	}
	return a, nil
}

// Middleware wraps next with the stage. It runs after routing: the route's policy
// (policy.FromContext; no route means AuthRequired without roles) decides:
//   - AuthNone: next runs at once; a credential sent is neither verified nor attached.
//   - AuthOptional: a credential sent must be valid (else 401); without one the caller is
//     anonymous, unless the route names roles, which an anonymous caller cannot have (401).
//   - AuthRequired: 401 without a valid credential.
//
// Then a caller without any of the route's roles gets 403. Refusals never touch the body (an
// HTTP/1 request with a body is refused with Connection: close, see refuse).
func (a *Authenticator) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mode, roles := policy.AuthRequired, []string(nil)
		if rt := policy.FromContext(r.Context()); rt != nil {
			mode, roles = rt.Policy.Auth, rt.Policy.Roles
		}
		if mode == policy.AuthNone {
			a.m.results[resultPublic].Inc()
			next.ServeHTTP(w, r)
			return
		}
		id, res, ref := a.authenticate(r)
		if ref == &refuseMissing && mode == policy.AuthOptional && len(roles) == 0 {
			a.m.results[resultAnonymous].Inc()
			next.ServeHTTP(w, r)
			return
		}
		if ref != nil {
			a.refuse(w, r, ref)
			return
		}
		if !id.HasAnyRole(roles...) {
			a.refuse(w, r, &refuseRole)
			return
		}
		a.m.results[res].Inc()
		next.ServeHTTP(w, edge.WithIdentity(r, id)) // in the edge state when there is one: no request copy
	})
}

// Close stops what the key sources run (the JWKS refresh goroutines). Safe to call twice; the
// second call does nothing and returns nil.
func (a *Authenticator) Close() error {
	var errs []error
	a.closeOnce.Do(func() {
		for _, v := range a.byIssuer {
			if c, ok := v.keys.(io.Closer); ok {
				errs = append(errs, c.Close())
			}
		}
	})
	return errors.Join(errs...)
}

const bearerPrefix = "Bearer "

// authenticate reads the one credential of r: an Authorization Bearer token or an X-API-Key.
// It returns the identity and its result, or the refusal (&refuseMissing when none was sent).
func (a *Authenticator) authenticate(r *http.Request) (identity.Identity, result, *refusal) {
	authz := r.Header["Authorization"]
	keys := r.Header["X-Api-Key"] // the canonical form of HeaderAPIKey
	switch n := len(authz) + len(keys); {
	case n == 0:
		return identity.Identity{}, 0, &refuseMissing
	case n > 1:
		return identity.Identity{}, 0, &refuseMultiple
	case len(keys) == 1:
		id, ok := a.apiKeys.lookup(keys[0])
		if !ok {
			a.log.Debug("api key refused: unknown key")
			return identity.Identity{}, 0, &refuseAPIKey
		}
		return id, resultAPIKey, nil
	}
	v := authz[0]
	if len(v) > a.maxHeader {
		a.log.Debug("token refused: over the size cap", "bytes", len(v))
		return identity.Identity{}, 0, &refuseToken
	}
	if strings.EqualFold(v, bearerPrefix[:len(bearerPrefix)-1]) { // "Bearer " with its blank trimmed
		return identity.Identity{}, 0, &refuseToken
	}
	if len(v) < len(bearerPrefix) || !strings.EqualFold(v[:len(bearerPrefix)], bearerPrefix) {
		return identity.Identity{}, 0, &refuseScheme
	}
	id, ref := a.verifyToken(r, v[len(bearerPrefix):])
	return id, resultJWT, ref
}

// verifyToken returns the identity token proves, from the cache when it holds the token.
func (a *Authenticator) verifyToken(r *http.Request, token string) (identity.Identity, *refusal) {
	now := a.now()
	var key cacheKey
	if a.cache != nil {
		// Hash the string's bytes in place: Sum256 only reads them, and a copy would be an
		// allocation of the token's size on every request.
		key = sha256.Sum256(unsafe.Slice(unsafe.StringData(token), len(token)))
		if id, ok := a.cache.get(&key, now); ok {
			a.m.cacheHit.Inc()
			return id, nil
		}
		a.m.cacheMiss.Inc()
	}
	h, iss, err := inspect(token)
	var v *verifier
	if err == nil {
		if v = a.byIssuer[iss]; v == nil {
			err = errUnknownIss
		}
	}
	var id identity.Identity
	var exp time.Time
	var gen uint64
	if err == nil {
		gen = v.generation() // before the key lookup: a refresh during it must not be missed
		id, exp, err = v.verify(r.Context(), token, h)
	}
	if err != nil {
		a.log.DebugContext(r.Context(), "token refused", "error", err)
		if errors.Is(err, jwt.ErrTokenExpired) {
			return identity.Identity{}, &refuseExpired
		}
		return identity.Identity{}, &refuseToken
	}
	if a.cache != nil {
		a.cache.put(&key, cacheEntry{id: id, src: v, gen: gen}, now, exp)
	}
	return id, nil
}
