// Package passporttest is what the services' tests share about the passport: a test signing
// key that stands in for the gateway's, the passports it signs, and a Verifier that trusts it.
//
// The key is derived from a fixed seed, so every test process (and a service binary started
// by a test with -passport-jwks pointing at WriteJWKS's file) agrees on it. Never trust it
// outside tests: its private half is in this file.
package passporttest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc/metadata"

	inventoryv1 "github.com/acme/shopgate/gen/shop/inventory/v1"
	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	paymentv1 "github.com/acme/shopgate/gen/shop/payment/v1"
	"github.com/acme/shopgate/services/passport"
)

// Key is the test signing key; OtherKey is a key nobody trusts.
var (
	Key      = keyFrom("shopgate passporttest key")
	OtherKey = keyFrom("shopgate passporttest other key")
)

// Audiences are the shop's services: the audience of Metadata's passports.
var Audiences = []string{
	orderv1.OrderService_ServiceDesc.ServiceName,
	paymentv1.PaymentService_ServiceDesc.ServiceName,
	inventoryv1.InventoryService_ServiceDesc.ServiceName,
}

// TTL is the lifetime of Metadata's passports.
const TTL = time.Hour

func keyFrom(seed string) ed25519.PrivateKey {
	sum := sha256.Sum256([]byte(seed))
	return ed25519.NewKeyFromSeed(sum[:])
}

// KeyID returns the kid of k's public half (its RFC 7638 thumbprint, as the gateway names it).
func KeyID(k ed25519.PrivateKey) string {
	x := base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey))
	sum := sha256.Sum256([]byte(`{"crv":"Ed25519","kty":"OKP","x":"` + x + `"}`))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// JWKS returns the JWK Set of the public halves of keys (Key when none is given).
func JWKS(keys ...ed25519.PrivateKey) []byte {
	if len(keys) == 0 {
		keys = []ed25519.PrivateKey{Key}
	}
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
	}
	var set struct {
		Keys []jwk `json:"keys"`
	}
	for _, k := range keys {
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(k.Public().(ed25519.PublicKey)), Kid: KeyID(k)})
	}
	b, err := json.Marshal(set)
	if err != nil {
		panic(err)
	}
	return b
}

// WriteJWKS writes JWKS() to a file under t.TempDir() and returns its path (for a service's
// -passport-jwks flag).
func WriteJWKS(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "passport-jwks.json")
	if err := os.WriteFile(path, JWKS(), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Verifier returns a verifier that trusts Key, for the server under test
// (grpcserver.Options.Passport).
func Verifier() *passport.Verifier {
	v, err := passport.NewVerifier(passport.Options{JWKS: JWKS(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		panic(err)
	}
	return v
}

// Claims is what Token signs.
type Claims struct {
	// Caller is sub, roles, auth and src.
	Caller passport.Caller
	// Audience is aud. Default: Audiences.
	Audience []string
	// Issuer is iss. Default: passport.Issuer.
	Issuer string
	// IssuedAt is iat. Default: now.
	IssuedAt time.Time
	// TTL is exp minus iat. Default: TTL.
	TTL time.Duration
	// Key signs. Default: Key.
	Key ed25519.PrivateKey
}

// Token returns a passport signed as c says.
func Token(c Claims) string {
	if c.Audience == nil {
		c.Audience = Audiences
	}
	if c.Issuer == "" {
		c.Issuer = passport.Issuer
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	if c.TTL == 0 {
		c.TTL = TTL
	}
	if c.Key == nil {
		c.Key = Key
	}
	roles := c.Caller.Roles
	if roles == nil {
		roles = []string{}
	}
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, struct {
		jwt.RegisteredClaims
		Source string   `json:"src"`
		Roles  []string `json:"roles"`
		Auth   string   `json:"auth"`
	}{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: c.Issuer, Subject: c.Caller.Subject, Audience: c.Audience,
			IssuedAt: jwt.NewNumericDate(c.IssuedAt), ExpiresAt: jwt.NewNumericDate(c.IssuedAt.Add(c.TTL)),
		},
		Source: c.Caller.Source, Roles: roles, Auth: c.Caller.Auth,
	})
	t.Header["kid"] = KeyID(c.Key)
	s, err := t.SignedString(c.Key)
	if err != nil {
		panic(err)
	}
	return s
}

// Metadata returns outgoing metadata carrying c's passport as the gateway would send it:
// passport.MDPassport once, signed with Key, for any of the shop's services (Audiences).
func Metadata(c passport.Caller) metadata.MD {
	return metadata.Pairs(passport.MDPassport, Token(Claims{Caller: c}))
}
