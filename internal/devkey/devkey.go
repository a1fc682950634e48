// Package devkey is the development signing key: an Ed25519 key pair made on first start under a
// folder, stable across restarts, that mints tokens the dev stack accepts and publishes its
// public half as a JWKS.
//
// Ed25519 (JWS alg EdDSA, RFC 8037) rather than ES256: its keys are one fixed size with no curve
// or parameter to get wrong, signing needs no randomness (ECDSA with a weak nonce leaks its
// private key), and its keys and signatures are the shortest; golang-jwt and the gateway verify
// it as they verify ES256.
//
// The dev stack trusts the key through a static source of gateway/auth (Key.AuthSource: the
// JWKS file in the folder), so no network fetch is needed at start. Never use it in production:
// anyone who can read the folder can mint any identity. That is why it lives under internal/,
// apart from the gateway's stages under gateway/: the development binaries (cmd/shop,
// cmd/devtoken) and tests use it, the gateway library does not.
package devkey

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/gateway/auth"
	"github.com/acme/shopgate/gateway/httperror"
	"github.com/acme/shopgate/gateway/passport"
)

// The dev stack's token contract.
const (
	// Issuer is the `iss` of development tokens.
	Issuer = "shop-dev"
	// Audience is the `aud` of development tokens.
	Audience = "shop-api"
	// DefaultDir is where the dev stack and cmd/devtoken keep the key.
	DefaultDir = "./data/devkeys"
	// DefaultTTL is a minted token's lifetime when Claims.TTL is zero.
	DefaultTTL = time.Hour
	// JWKSPath is where the dev stack serves Handler.
	JWKSPath = "/.well-known/jwks.json"
)

// The files under the key folder, each mode 0600 in a folder of mode 0700.
const (
	// PrivateKeyFile holds the private key, PKCS #8 PEM.
	PrivateKeyFile = "ed25519.pem"
	// PublicKeyFile holds the public key, PKIX PEM.
	PublicKeyFile = "ed25519.pub.pem"
	// JWKSFile holds the public key as a JWKS document, with its kid.
	JWKSFile = "jwks.json"
)

// jwksMaxAge is how long clients may cache the JWKS response.
const jwksMaxAge = 5 * time.Minute

// Key is a loaded development key. Safe for concurrent use.
type Key struct {
	dir  string
	priv ed25519.PrivateKey
	kid  string
	jwks []byte
}

// LoadOrCreate loads the key under dir, making dir (mode 0700) and a new key pair (files mode
// 0600) when there is none; an existing folder or private key file with looser modes is
// tightened to these. The private key file is created atomically, so two processes
// starting at once end with the same key. The public files are rewritten from the private key
// at every call.
func LoadOrCreate(dir string) (*Key, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating key folder: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil { // an existing folder may have been looser
		return nil, fmt.Errorf("protecting key folder: %w", err)
	}
	privPath := filepath.Join(dir, PrivateKeyFile)
	priv, err := readPrivate(privPath)
	if errors.Is(err, fs.ErrNotExist) {
		priv, err = createPrivate(dir, privPath)
	}
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(privPath, 0o600); err != nil {
		return nil, fmt.Errorf("protecting private key: %w", err)
	}
	k := &Key{dir: dir, priv: priv}
	pub := priv.Public().(ed25519.PublicKey)
	k.kid = thumbprint(pub)
	k.jwks, err = json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "x": base64.RawURLEncoding.EncodeToString(pub),
		"kid": k.kid, "alg": "EdDSA", "use": "sig",
	}}})
	if err != nil {
		return nil, fmt.Errorf("encoding jwks: %w", err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding public key: %w", err)
	}
	if err := writeFile(dir, PublicKeyFile, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})); err != nil {
		return nil, err
	}
	if err := writeFile(dir, JWKSFile, k.jwks); err != nil {
		return nil, err
	}
	return k, nil
}

func readPrivate(path string) (ed25519.PrivateKey, error) {
	k, err := passport.ReadKeyFile(path) // the same format as the passport's keys
	return k.Private, err
}

// createPrivate writes a new key to a temporary file and links it to path, which fails if
// another process made path first; then path is read back, so both use the same key.
func createPrivate(dir, path string) (ed25519.PrivateKey, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	tmp, err := writeTemp(dir, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp)
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("storing private key: %w", err)
	}
	return readPrivate(path)
}

// writeFile replaces dir/name atomically with data, mode 0600.
func writeFile(dir, name string, data []byte) error {
	tmp, err := writeTemp(dir, data)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("storing %s: %w", name, err)
	}
	return nil
}

func writeTemp(dir string, data []byte) (string, error) {
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("creating key file: %w", err)
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	if err := errors.Join(werr, cerr, os.Chmod(f.Name(), 0o600)); err != nil {
		_ = os.Remove(f.Name())
		return "", fmt.Errorf("writing key file: %w", err)
	}
	return f.Name(), nil
}

// thumbprint is the RFC 7638 JWK thumbprint of pub: stable, so the kid survives restarts.
func thumbprint(pub ed25519.PublicKey) string { return passport.KeyID(pub) }

// AuthSource returns the gateway/auth source that trusts this key: issuer Issuer, audience
// Audience, algorithm EdDSA, keys from the JWKS file in the key folder (no network needed).
func (k *Key) AuthSource() auth.Source {
	return auth.Source{
		Name:       "devkey",
		Issuer:     Issuer,
		Audiences:  []string{Audience},
		Algorithms: []string{"EdDSA"},
		JWKSFile:   filepath.Join(k.dir, JWKSFile),
		// The dev stack's customers are "alice", not "devkey|alice": what `make run` shows
		// stays simple. Another source added beside it namespaces its own subjects.
		PlainSubjects: true,
	}
}

// Claims is what a minted token says.
type Claims struct {
	// Subject is `sub`. Required.
	Subject string
	// Roles is the `roles` array. Default: none (no claim).
	Roles []string
	// Issuer is `iss`. Default: Issuer.
	Issuer string
	// Audience is `aud`. Default: Audience.
	Audience string
	// TTL is exp minus iat. Default: DefaultTTL; negative mints an already expired token.
	TTL time.Duration
	// Now is iat. Default: time.Now().
	Now time.Time
	// Extra are more top-level string claims (a traffic rule's claim, gateway/traffic); they
	// cannot replace the claims above. Default: none.
	Extra map[string]string
}

// tokenClaims is the JSON payload of a minted token.
type tokenClaims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles,omitempty"`
}

// Mint returns a compact JWS of c, signed EdDSA with the key's kid in its header.
func (k *Key) Mint(c Claims) (string, error) {
	if c.Subject == "" {
		return "", errors.New("minting token: subject is required")
	}
	if c.Issuer == "" {
		c.Issuer = Issuer
	}
	if c.Audience == "" {
		c.Audience = Audience
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Now.IsZero() {
		c.Now = time.Now()
	}
	var claims jwt.Claims = tokenClaims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    c.Issuer,
			Subject:   c.Subject,
			Audience:  jwt.ClaimStrings{c.Audience},
			IssuedAt:  jwt.NewNumericDate(c.Now),
			ExpiresAt: jwt.NewNumericDate(c.Now.Add(c.TTL)),
		},
		Roles: c.Roles,
	}
	if len(c.Extra) > 0 {
		m := jwt.MapClaims{"iss": c.Issuer, "sub": c.Subject, "aud": []string{c.Audience},
			"iat": c.Now.Unix(), "exp": c.Now.Add(c.TTL).Unix()}
		if len(c.Roles) > 0 {
			m["roles"] = c.Roles
		}
		for name, v := range c.Extra {
			if _, taken := m[name]; taken || name == "roles" || name == "nbf" || name == "jti" {
				return "", fmt.Errorf("minting token: extra claim %q is not an extra", name)
			}
			m[name] = v
		}
		claims = m
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["kid"] = k.kid
	s, err := t.SignedString(k.priv)
	if err != nil {
		return "", fmt.Errorf("minting token: %w", err)
	}
	return s, nil
}

// Handler serves JWKS() to GET and HEAD (serve it at JWKSPath) with Cache-Control max-age
// 300; other methods get 405.
func (k *Key) Handler() http.Handler {
	cacheControl := "public, max-age=" + strconv.Itoa(int(jwksMaxAge/time.Second))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			httperror.WriteWithStatus(w, http.StatusMethodNotAllowed, status.New(codes.Unimplemented, "method not allowed"))
			return
		}
		h := w.Header()
		h.Set("Content-Type", "application/jwk-set+json")
		h.Set("Cache-Control", cacheControl)
		h.Set("Content-Length", strconv.Itoa(len(k.jwks)))
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(k.jwks)
	})
}
