package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"

	"github.com/acme/shopgate/gateway/identity"
)

// keySource finds the key that verifies a token. It is one of staticKeys, secretKey or
// jwksKeys.
type keySource interface {
	// key returns the verification key for a token with header h. The caller checks that the
	// key's type fits h.alg.
	key(ctx context.Context, t *jwt.Token, h header) (any, error)
	// generation changes whenever the key set changes; cache entries of an older generation
	// are not served.
	generation() uint64
	// close stops what the source runs.
	close()
}

// verifier verifies the tokens of one Source.
type verifier struct {
	name       string
	parser     *jwt.Parser
	keys       keySource
	rolesClaim string
	scopeClaim string
}

// newVerifier builds the verifier of s, which has its defaults.
func newVerifier(s Source, cfg Config, opts Options, m *metrics) (*verifier, error) {
	v := &verifier{
		name:       s.Name,
		rolesClaim: s.RolesClaim,
		scopeClaim: s.ScopeClaim,
		parser: jwt.NewParser(
			jwt.WithValidMethods(s.Algorithms),
			jwt.WithIssuer(s.Issuer),
			jwt.WithAudience(s.Audiences...),
			jwt.WithExpirationRequired(),
			jwt.WithIssuedAt(),
			jwt.WithLeeway(cfg.Leeway),
			jwt.WithTimeFunc(opts.Clock),
			jwt.WithStrictDecoding(),
		),
	}
	var err error
	switch {
	case s.JWKSURL != "":
		v.keys, err = newJWKSKeys(s, opts, m)
	case s.JWKSFile != "":
		v.keys, err = loadJWKSFile(s.JWKSFile)
	case len(s.KeyFiles) > 0:
		v.keys, err = loadKeyFiles(s.KeyFiles)
	default:
		v.keys, err = loadSecret(s.SecretFile)
	}
	if err != nil {
		return nil, err
	}
	return v, nil
}

// verify checks token (whose header inspect already read) and returns the identity it proves
// and its expiry.
func (v *verifier) verify(ctx context.Context, token string, h header) (identity.Identity, time.Time, error) {
	c := tokenClaims{rolesClaim: v.rolesClaim, scopeClaim: v.scopeClaim}
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		k, err := v.keys.key(ctx, t, h)
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
	if c.Subject == "" {
		return identity.Identity{}, time.Time{}, errBadSubject
	}
	// The cache hands the same Roles to every request of the token: clipped, an append by a
	// later stage copies instead of writing into the shared array.
	return identity.Identity{Subject: c.Subject, Roles: slices.Clip(c.roles), Method: identity.MethodJWT}.WithPassport(), c.ExpiresAt.Time, nil
}

// tokenClaims are the registered claims plus the roles, read from configurable claim names.
type tokenClaims struct {
	jwt.RegisteredClaims
	rolesClaim, scopeClaim string
	roles                  []string
}

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

// staticKeys is a fixed set of public keys read at start.
type staticKeys struct {
	byKID map[string]crypto.PublicKey
	only  crypto.PublicKey // the key used by tokens without kid; nil when there are several
}

func (s *staticKeys) key(_ context.Context, _ *jwt.Token, h header) (any, error) {
	if !h.hasKID {
		if s.only == nil {
			return nil, errNoKID
		}
		return s.only, nil
	}
	k, ok := s.byKID[h.kid]
	if !ok {
		return nil, errUnknownKID
	}
	return k, nil
}

func (s *staticKeys) generation() uint64 { return 0 }
func (s *staticKeys) close()             {}

func newStaticKeys(byKID map[string]crypto.PublicKey, unnamed []crypto.PublicKey) (*staticKeys, error) {
	s := &staticKeys{byKID: byKID}
	switch n := len(byKID) + len(unnamed); {
	case n == 0:
		return nil, errors.New("no usable key")
	case n == 1 && len(unnamed) == 1:
		s.only = unnamed[0]
	case n == 1:
		for _, k := range byKID {
			s.only = k
		}
	}
	return s, nil
}

// loadKeyFiles reads PEM public keys.
func loadKeyFiles(files []KeyFile) (*staticKeys, error) {
	byKID := map[string]crypto.PublicKey{}
	var unnamed []crypto.PublicKey
	for _, f := range files {
		k, err := readPublicKeyPEM(f.Path)
		if err != nil {
			return nil, err
		}
		if f.KID == "" {
			unnamed = append(unnamed, k)
		} else {
			byKID[f.KID] = k
		}
	}
	return newStaticKeys(byKID, unnamed)
}

// readPublicKeyPEM reads the first PEM block of path: PUBLIC KEY, RSA PUBLIC KEY or
// CERTIFICATE. Private keys are refused: the gateway only ever holds public keys.
func readPublicKeyPEM(path string) (crypto.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("key file %s: no PEM block", path)
	}
	var k any
	switch block.Type {
	case "PUBLIC KEY":
		k, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		k, err = x509.ParsePKCS1PublicKey(block.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(block.Bytes); err == nil {
			k = cert.PublicKey
		}
	default:
		return nil, fmt.Errorf("key file %s: PEM type %q is not a public key", path, block.Type)
	}
	if err != nil {
		return nil, fmt.Errorf("key file %s: %w", path, err)
	}
	switch k.(type) {
	case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
		return k, nil
	}
	return nil, fmt.Errorf("key file %s: unsupported key type %T", path, k)
}

// loadJWKSFile reads a JWKS document of public keys. Every key needs a kid; symmetric and
// private keys are refused.
func loadJWKSFile(path string) (*staticKeys, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading jwks file: %w", err)
	}
	keys, err := parseJWKS(data)
	if err != nil {
		return nil, fmt.Errorf("jwks file %s: %w", path, err)
	}
	return newStaticKeys(keys, nil)
}

// parseJWKS turns a JWKS document into public keys by kid.
func parseJWKS(data []byte) (map[string]crypto.PublicKey, error) {
	var set jwkset.JWKSMarshal
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, err
	}
	keys := map[string]crypto.PublicKey{}
	for _, m := range set.Keys {
		if m.KID == "" {
			return nil, errors.New("a key has no kid")
		}
		if m.USE != "" && m.USE != jwkset.UseSig {
			continue // an encryption key never verifies a signature
		}
		jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", m.KID, err)
		}
		switch k := jwk.Key().(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			keys[m.KID] = k
		default:
			return nil, fmt.Errorf("key %q: not a public key (%T)", m.KID, k)
		}
	}
	return keys, nil
}

// secretKey is an HMAC shared secret.
type secretKey []byte

func (s secretKey) key(context.Context, *jwt.Token, header) (any, error) { return []byte(s), nil }
func (s secretKey) generation() uint64                                   { return 0 }
func (s secretKey) close()                                               {}

// minSecretBytes is the shortest HMAC secret accepted (RFC 7518 3.2: at least the hash size).
const minSecretBytes = 32

func loadSecret(path string) (secretKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading secret file: %w", err)
	}
	data = []byte(strings.TrimSuffix(strings.TrimSuffix(string(data), "\n"), "\r"))
	if len(data) < minSecretBytes {
		return nil, fmt.Errorf("secret file %s: want at least %d bytes", path, minSecretBytes)
	}
	return secretKey(data), nil
}
