package passport

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"

	"github.com/acme/shopgate/gateway/identity"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Now()} }

const orderGet = "/shop.order.v1.OrderService/GetOrder"

var alice = identity.Identity{Source: "idp", Subject: "idp|alice", Roles: []string{"customer", "rôle, with \"quotes\""}, Method: identity.MethodJWT}.WithPassport()

// call runs the unary stage for method with id (none when nil) and returns the metadata the
// upstream would get.
func call(t testing.TB, s *Signer, method string, id *identity.Identity) metadata.MD {
	t.Helper()
	ctx := context.Background()
	if id != nil {
		ctx = identity.NewContext(ctx, *id)
	}
	var md metadata.MD
	err := s.Unary(ctx, method, nil, nil, nil, func(ctx context.Context, _ string, _, _ any, _ *grpc.ClientConn, _ ...grpc.CallOption) error {
		md, _ = metadata.FromOutgoingContext(ctx)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return md
}

// parse verifies tok with the public keys of s's JWKS and returns its claims.
func parse(t testing.TB, s *Signer, tok string, now time.Time) (Claims, string) {
	t.Helper()
	keys := map[string]ed25519.PublicKey{}
	for _, k := range s.ring.Load().keys {
		keys[k.ID] = k.Private.Public().(ed25519.PublicKey)
	}
	var c Claims
	var kid string
	_, err := jwt.ParseWithClaims(tok, &c, func(tk *jwt.Token) (any, error) {
		kid, _ = tk.Header["kid"].(string)
		return keys[kid], nil
	}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithTimeFunc(func() time.Time { return now }), jwt.WithExpirationRequired())
	if err != nil {
		t.Fatalf("passport %s: %v", tok, err)
	}
	return c, kid
}

func newSigner(t testing.TB, cfg Config, clk *clock) *Signer {
	t.Helper()
	s, err := New(cfg, Options{Logger: quiet, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPassportClaims(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := newSigner(t, Config{}, clk)
	apikey := identity.Identity{Source: "apikey", Subject: "apikey|ops", Method: identity.MethodAPIKey}.WithPassport()
	tests := []struct {
		name   string
		id     *identity.Identity
		method string
		want   *Claims // nil: no passport
	}{
		{"anonymous: no identity", nil, orderGet, nil},
		{"anonymous identity", &identity.Identity{}, orderGet, nil},
		{"jwt caller", &alice, orderGet, &Claims{Source: "idp", Roles: alice.Roles, Auth: "jwt",
			RegisteredClaims: jwt.RegisteredClaims{Subject: "idp|alice", Audience: jwt.ClaimStrings{"shop.order.v1.OrderService"}}}},
		{"another service", &alice, "/shop.payment.v1.PaymentService/ListPayments", &Claims{Source: "idp", Roles: alice.Roles, Auth: "jwt",
			RegisteredClaims: jwt.RegisteredClaims{Subject: "idp|alice", Audience: jwt.ClaimStrings{"shop.payment.v1.PaymentService"}}}},
		{"api key without roles", &apikey, orderGet, &Claims{Source: "apikey", Roles: []string{}, Auth: "apikey",
			RegisteredClaims: jwt.RegisteredClaims{Subject: "apikey|ops", Audience: jwt.ClaimStrings{"shop.order.v1.OrderService"}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			md := call(t, s, tt.method, tt.id)
			got := md.Get(MDPassport)
			if tt.want == nil {
				if len(md) != 0 {
					t.Fatalf("anonymous call got metadata %v", md)
				}
				return
			}
			if len(got) != 1 || len(md) != 1 {
				t.Fatalf("metadata %v, want exactly one %s", md, MDPassport)
			}
			c, kid := parse(t, s, got[0], clk.Now())
			if kid != s.SigningKeyID() || c.Issuer != Issuer || c.Subject != tt.want.Subject || !slices.Equal(c.Audience, tt.want.Audience) ||
				c.Source != tt.want.Source || !slices.Equal(c.Roles, tt.want.Roles) || c.Roles == nil || c.Auth != tt.want.Auth {
				t.Errorf("claims %+v (kid %s), want %+v", c, kid, tt.want)
			}
			if life := c.ExpiresAt.Sub(c.IssuedAt.Time); life != DefaultTTL {
				t.Errorf("exp - iat = %s, want %s", life, DefaultTTL)
			}
		})
	}
}

// TestPassportCache checks that a caller's passport for a service is signed once per half
// life: the same token until then, a new one after, and one per service.
func TestPassportCache(t *testing.T) {
	t.Parallel()
	clk := newClock()
	s := newSigner(t, Config{TTL: time.Minute}, clk)
	tok := func(method string, id identity.Identity) string { return call(t, s, method, &id).Get(MDPassport)[0] }
	first := tok(orderGet, alice)
	for range 100 {
		if got := tok(orderGet, alice); got != first {
			t.Fatal("a warm passport was signed again")
		}
	}
	// The same identity rendered on its own (not WithPassport) finds the same passport.
	plain := identity.Identity{Source: alice.Source, Subject: alice.Subject, Roles: alice.Roles, Method: alice.Method}
	if tok(orderGet, plain) != first {
		t.Error("an equal identity got another passport")
	}
	if tok("/shop.payment.v1.PaymentService/GetPayment", alice) == first {
		t.Error("the payment service got the order service's passport")
	}
	if n := s.Signatures(); n != 2 {
		t.Errorf("%d signatures, want 2 (one per service)", n)
	}
	clk.Advance(29 * time.Second)
	if tok(orderGet, alice) != first {
		t.Error("signed again before half its life")
	}
	clk.Advance(2 * time.Second)
	renewed := tok(orderGet, alice)
	if renewed == first {
		t.Error("not signed again after half its life")
	}
	if c, _ := parse(t, s, renewed, clk.Now()); !c.IssuedAt.After(clk.Now().Add(-time.Second)) {
		t.Errorf("renewed passport issued at %s", c.IssuedAt)
	}
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	s := newSigner(t, Config{CacheSize: 50}, newClock())
	for i := range 200 {
		id := identity.Identity{Subject: "user-" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + string(rune('a'+i/26)), Method: identity.MethodJWT}.WithPassport()
		call(t, s, orderGet, &id)
	}
	if n := s.cache.len(); n > 50 {
		t.Errorf("cache holds %d passports, want at most 50", n)
	}
}

func writeKey(t testing.TB, dir, name string) Key {
	t.Helper()
	k, err := GenerateKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	if name != "" {
		dst := filepath.Join(dir, name)
		if err := os.Rename(k.File, dst); err != nil {
			t.Fatal(err)
		}
		k.File = dst
	}
	return k
}

// TestKeyRotation checks the gateway's side of a rotation: a key added to the folder signs
// from the next look at it (the newest by name), every passport is signed again with it, and
// a removed key is no longer published; a bad file keeps the keys in use.
func TestKeyRotation(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	old := writeKey(t, dir, "2026-01.pem")
	clk := newClock()
	s := newSigner(t, Config{KeyDir: dir}, clk)
	kidOf := func() string {
		_, kid := parse(t, s, call(t, s, orderGet, &alice).Get(MDPassport)[0], clk.Now())
		return kid
	}
	if kid := kidOf(); kid != old.ID {
		t.Fatalf("signed with %s, want %s", kid, old.ID)
	}
	next := writeKey(t, dir, "2026-02.pem")
	if kid := kidOf(); kid != old.ID {
		t.Error("switched keys before the folder was looked at again")
	}
	clk.Advance(DefaultKeyCheckInterval)
	if kid := kidOf(); kid != next.ID {
		t.Errorf("signed with %s after the check, want the new key %s", kid, next.ID)
	}
	for _, k := range []Key{old, next} {
		if !strings.Contains(string(s.JWKS()), k.ID) {
			t.Errorf("JWKS lacks %s", k.ID)
		}
	}
	// A bad key file: the keys in use stay.
	if err := os.WriteFile(filepath.Join(dir, "2026-03.pem"), []byte("not a key"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Advance(DefaultKeyCheckInterval)
	if kid := kidOf(); kid != next.ID {
		t.Errorf("a bad key file changed the signing key to %s", kid)
	}
	// The old key removed (and the bad file): no longer published.
	for _, name := range []string{"2026-01.pem", "2026-03.pem"} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	clk.Advance(DefaultKeyCheckInterval)
	if kid := kidOf(); kid != next.ID || strings.Contains(string(s.JWKS()), old.ID) {
		t.Errorf("after removing the old key: signing %s, JWKS %s", kid, s.JWKS())
	}
}

func TestNewErrors(t *testing.T) {
	t.Parallel()
	bad := t.TempDir()
	if err := os.WriteFile(filepath.Join(bad, "k.pem"), []byte("-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"empty folder", Config{KeyDir: t.TempDir()}, "no *.pem key file"},
		{"missing folder", Config{KeyDir: filepath.Join(t.TempDir(), "nope")}, "key folder"},
		{"not a private key", Config{KeyDir: bad}, "no PRIVATE KEY"},
		{"ttl too short", Config{TTL: time.Second}, "ttl"},
		{"ttl too long", Config{TTL: 2 * time.Hour}, "ttl"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := New(tt.cfg, Options{Logger: quiet}); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: %v, want an error with %q", err, tt.want)
			}
		})
	}
}

func TestGenerateKeyFiles(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "keys")
	if err := EnsureKey(dir); err != nil {
		t.Fatal(err)
	}
	if err := EnsureKey(dir); err != nil { // a second start keeps the key
		t.Fatal(err)
	}
	k2 := writeKey(t, dir, "") // the same second: another name, never a replacement
	keys, err := ReadKeyDir(dir)
	if err != nil || len(keys) != 2 || keys[1].ID != k2.ID {
		t.Fatalf("keys %v, %v: want two, the newest last", keys, err)
	}
	for _, k := range keys {
		fi, err := os.Stat(k.File)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v, mode %v, want 0600", k.File, err, fi.Mode().Perm())
		}
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("folder mode %v, want 0700", fi.Mode().Perm())
	}
	jwks, err := JWKSOf(dir, keys[0].File)
	if err != nil || strings.Count(string(jwks), `"kid"`) != 2 {
		t.Errorf("JWKSOf = %s, %v: want each key once", jwks, err)
	}
}

// BenchmarkUnary is the passport stage's cost per request: "warm" with the caller's passport
// cached (every request but one per caller, service and half life), "sign" signing each time
// (what a passport per request would cost), "unsigned-before" the unsigned x-user-* metadata
// the stage attached before, "anonymous" with no caller.
func BenchmarkUnary(b *testing.B) {
	invoker := func(context.Context, string, any, any, *grpc.ClientConn, ...grpc.CallOption) error { return nil }
	run := func(b *testing.B, s *Signer, ctx context.Context) {
		b.ReportAllocs()
		for b.Loop() {
			if err := s.Unary(ctx, orderGet, nil, nil, nil, invoker); err != nil {
				b.Fatal(err)
			}
		}
	}
	ctx := identity.NewContext(context.Background(), alice)
	b.Run("warm", func(b *testing.B) {
		s := newSigner(b, Config{}, &clock{t: time.Now()})
		run(b, s, ctx)
		if n := s.Signatures(); n != 1 {
			b.Fatalf("%d signatures", n)
		}
	})
	b.Run("sign", func(b *testing.B) {
		s := newSigner(b, Config{}, &clock{t: time.Now()})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Sign(alice, "shop.order.v1.OrderService"); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("unsigned-before", func(b *testing.B) { // the stage before passports were signed: x-user-* metadata
		b.ReportAllocs()
		for b.Loop() {
			id, _ := identity.FromContext(ctx)
			_ = invoker(metadata.AppendToOutgoingContext(ctx, "x-user-id", id.Subject, "x-user-roles", "customer", "x-user-auth", "jwt"), orderGet, nil, nil, nil)
		}
	})
	b.Run("anonymous", func(b *testing.B) {
		run(b, newSigner(b, Config{}, &clock{t: time.Now()}), context.Background())
	})
}
