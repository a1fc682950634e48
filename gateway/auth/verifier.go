package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/shopgate/gateway/identity"
)

// verifier verifies the tokens of one Source.
type verifier struct {
	name       string
	parser     *jwt.Parser
	keys       KeySource
	rot        rotating // keys as a rotating source; nil when its keys never change
	rolesClaim string
	scopeClaim string
	plain      bool            // Source.PlainSubjects
	allowed    map[string]bool // Source.AllowedRoles; nil: any
}

// newVerifier builds the verifier of s (which has its defaults) around its keys.
func newVerifier(s Source, leeway time.Duration, clock func() time.Time, keys KeySource) *verifier {
	v := &verifier{
		name:       s.Name,
		keys:       keys,
		rolesClaim: s.RolesClaim,
		scopeClaim: s.ScopeClaim,
		plain:      s.PlainSubjects,
		parser: jwt.NewParser(
			jwt.WithValidMethods(s.Algorithms),
			jwt.WithIssuer(s.Issuer),
			jwt.WithAudience(s.Audiences...),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(leeway),
			jwt.WithTimeFunc(clock),
			jwt.WithStrictDecoding(),
		),
	}
	if len(s.AllowedRoles) > 0 {
		v.allowed = make(map[string]bool, len(s.AllowedRoles))
		for _, r := range s.AllowedRoles {
			v.allowed[r] = true
		}
	}
	v.rot, _ = keys.(rotating)
	return v
}

// generation is the generation of v's key set (see rotating); 0 for keys that never change.
func (v *verifier) generation() uint64 {
	if v.rot == nil {
		return 0
	}
	return v.rot.generation()
}

// verify checks token (whose header inspect already read into h) and returns the identity it
// proves and its expiry.
func (v *verifier) verify(ctx context.Context, token string, h header) (identity.Identity, time.Time, error) {
	c := tokenClaims{rolesClaim: v.rolesClaim, scopeClaim: v.scopeClaim}
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		k, err := v.keys.Key(ctx, t)
		if err != nil {
			return nil, err
		}
		if err := keyFitsAlg(k, h.alg); err != nil {
			return nil, err
		}
		return k, nil
	})
	if err != nil {
		return identity.Identity{}, time.Time{}, err
	}
	if c.Subject == "" || !utf8.ValidString(c.Subject) || v.plain && strings.Contains(c.Subject, subjectSeparator) {
		return identity.Identity{}, time.Time{}, errBadSubject
	}
	roles := c.roles[:0]
	for _, r := range c.roles {
		if !ValidRole(r) {
			return identity.Identity{}, time.Time{}, errBadRole
		}
		if v.allowed == nil || v.allowed[r] {
			roles = append(roles, r)
		}
	}
	subject := c.Subject
	if !v.plain {
		subject = v.name + subjectSeparator + c.Subject
	}
	// The cache hands the same Roles to every request of the token: clipped, an append by a
	// later stage copies instead of writing into the shared array.
	return identity.Identity{Source: v.name, Subject: subject, Roles: slices.Clip(roles), Method: identity.MethodJWT, Claims: c.extra}.WithPassport(), c.ExpiresAt.Time, nil
}

// tokenClaims are the registered claims plus the roles, read from configurable claim names.
type tokenClaims struct {
	jwt.RegisteredClaims
	rolesClaim, scopeClaim string
	roles                  []string
	extra                  map[string]string // identity.Identity.Claims
}

// registered are the claims identity.Identity.Claims leaves out.
var registered = map[string]bool{"iss": true, "sub": true, "aud": true, "exp": true, "nbf": true, "iat": true, "jti": true}

// UnmarshalJSON reads the registered claims, the roles array and the optional scope string.
func (c *tokenClaims) UnmarshalJSON(data []byte) error {
	if err := json.Unmarshal(data, &c.RegisteredClaims); err != nil {
		return err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(data, &all); err != nil {
		return err
	}
	if raw, ok := all[c.rolesClaim]; ok {
		if err := json.Unmarshal(raw, &c.roles); err != nil {
			return errBadRoles
		}
	}
	if raw, ok := all[c.scopeClaim]; ok && c.scopeClaim != "" {
		var scope string
		if err := json.Unmarshal(raw, &scope); err != nil {
			return errBadRoles
		}
		c.roles = append(c.roles, strings.Fields(scope)...)
	}
	for name, raw := range all {
		if registered[name] || name == c.rolesClaim || name == c.scopeClaim || len(raw) == 0 {
			continue
		}
		var v string
		switch raw[0] {
		case '"':
			if json.Unmarshal(raw, &v) != nil {
				continue
			}
		case '{', '[', 'n':
			continue
		default: // a number, true or false, as written
			v = string(raw)
		}
		if c.extra == nil {
			c.extra = make(map[string]string, len(all))
		}
		c.extra[name] = v
	}
	return nil
}

// keyFitsAlg refuses a key of another type than alg needs (an RSA key for ES256, a public key
// for HS256), so no key is ever used with an algorithm it was not made for.
func keyFitsAlg(key any, alg string) error {
	ok := false
	switch {
	case strings.HasPrefix(alg, "RS"), strings.HasPrefix(alg, "PS"):
		k, isRSA := key.(*rsa.PublicKey)
		ok = isRSA && k.N.BitLen() >= 2048
	case alg == "ES256":
		k, isEC := key.(*ecdsa.PublicKey)
		ok = isEC && k.Curve == elliptic.P256()
	case alg == "ES384":
		k, isEC := key.(*ecdsa.PublicKey)
		ok = isEC && k.Curve == elliptic.P384()
	case alg == "EdDSA":
		k, isEd := key.(ed25519.PublicKey)
		ok = isEd && len(k) == ed25519.PublicKeySize
	case strings.HasPrefix(alg, "HS"):
		_, ok = key.([]byte)
	}
	if !ok {
		return errKeyMismatch
	}
	return nil
}
