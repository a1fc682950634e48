package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// KeySource is where the verification keys of one Source come from. New builds one per Source
// from the field that names its keys: a static source, read once at start, for JWKSFile,
// KeyFiles (staticKeys) and SecretFile (secretKey); a JWKS source, fetched and refreshed through
// keyfunc, for JWKSURL (jwksKeys).
//
// A source whose key set changes while it runs also implements rotating, so that the token
// cache drops what older keys verified; one that runs something implements io.Closer, and
// Authenticator.Close closes it.
type KeySource interface {
	// Key returns the key that verifies token: a *rsa.PublicKey, *ecdsa.PublicKey,
	// ed25519.PublicKey, or the HMAC secret as []byte. The token is parsed but not yet
	// verified; its header passed inspect (an alg; a kid, when present, is a short printable
	// string). The caller checks that the key's type fits the token's alg. An error refuses
	// the token.
	Key(ctx context.Context, token *jwt.Token) (any, error)
}

// rotating is implemented by a KeySource whose key set changes while it runs.
type rotating interface {
	// generation changes whenever the key set changes; cache entries verified under an older
	// generation are not served.
	generation() uint64
}

// The implementations, and what each does beyond Key.
var (
	_ KeySource = (*staticKeys)(nil)
	_ KeySource = secretKey(nil)
	_ KeySource = (*jwksKeys)(nil)
	_ rotating  = (*jwksKeys)(nil)
	_ io.Closer = (*jwksKeys)(nil)
)

// newKeySource builds the KeySource that s (which has its defaults) names: it reads the key
// files, or starts the JWKS source (whose first fetch, bounded by s.FetchTimeout, may fail
// without an error: tokens are refused until a fetch succeeds).
func newKeySource(s Source, opts Options, m *metrics) (KeySource, error) {
	var (
		keys KeySource
		err  error
	)
	switch {
	case s.JWKSURL != "":
		keys, err = newJWKSKeys(s, opts, m)
	case s.JWKSFile != "":
		keys, err = loadJWKSFile(s.JWKSFile)
	case len(s.KeyFiles) > 0:
		keys, err = loadKeyFiles(s.KeyFiles)
	default:
		keys, err = loadSecret(s.SecretFile)
	}
	if err != nil {
		return nil, err // not keys: an interface holding a nil pointer
	}
	return keys, nil
}

// kidOf returns the kid of token's header, and whether it has one.
func kidOf(token *jwt.Token) (string, bool) {
	kid, ok := token.Header["kid"].(string)
	return kid, ok
}

// staticKeys is a fixed set of public keys read at start, from a JWKS file or PEM key files.
type staticKeys struct {
	byKID map[string]crypto.PublicKey
	only  crypto.PublicKey // the key used by tokens without kid; nil when there are several
}

// Key returns the key the token's kid names; a token without kid gets the source's only key.
func (s *staticKeys) Key(_ context.Context, token *jwt.Token) (any, error) {
	kid, hasKID := kidOf(token)
	if !hasKID {
		if s.only == nil {
			return nil, errNoKID
		}
		return s.only, nil
	}
	k, ok := s.byKID[kid]
	if !ok {
		return nil, errUnknownKID
	}
	return k, nil
}

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

// secretKey is an HMAC shared secret read at start.
type secretKey []byte

// Key returns the secret, whatever kid the token names or not.
func (s secretKey) Key(context.Context, *jwt.Token) (any, error) { return []byte(s), nil }

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
