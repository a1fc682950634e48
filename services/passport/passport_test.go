package passport_test

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/acme/shopgate/services/passport"
	"github.com/acme/shopgate/services/passport/passporttest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const orders = "shop.order.v1.OrderService"

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

func newVerifier(t testing.TB, opts passport.Options) *passport.Verifier {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quiet
	}
	v, err := passport.NewVerifier(opts)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var alice = passport.Caller{Subject: "idp|alice", Roles: []string{"customer", "rôle, \"quoted\""}, Auth: "jwt", Source: "idp"}

func TestVerify(t *testing.T) {
	t.Parallel()
	now := time.Now()
	clk := &clock{t: now}
	v := newVerifier(t, passport.Options{JWKS: passporttest.JWKS(), Now: clk.Now})
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": passport.Issuer, "sub": "mallory", "aud": orders, "exp": now.Add(time.Hour).Unix(), "iat": now.Unix()})
	hs.Header["kid"] = passporttest.KeyID(passporttest.Key)
	hsTok, _ := hs.SignedString([]byte(passporttest.Key.Public().(ed25519.PublicKey))) // the public key as an HMAC secret
	none := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": passport.Issuer, "sub": "mallory", "aud": orders, "exp": now.Add(time.Hour).Unix()})
	noneTok, _ := none.SignedString(jwt.UnsafeAllowNoneSignatureType)
	tests := []struct {
		name    string
		token   string
		service string
		ok      bool
	}{
		{"the gateway's", passporttest.Token(passporttest.Claims{Caller: alice, Audience: []string{orders}}), orders, true},
		{"expired within the leeway", passporttest.Token(passporttest.Claims{Caller: alice, IssuedAt: now.Add(-time.Minute), TTL: time.Minute - 5*time.Second}), orders, true},
		{"expired", passporttest.Token(passporttest.Claims{Caller: alice, IssuedAt: now.Add(-10 * time.Minute), TTL: 5 * time.Minute}), orders, false},
		{"issued in the future", passporttest.Token(passporttest.Claims{Caller: alice, IssuedAt: now.Add(time.Minute)}), orders, false},
		{"signed by another key", passporttest.Token(passporttest.Claims{Caller: alice, Key: passporttest.OtherKey}), orders, false},
		{"for another service", passporttest.Token(passporttest.Claims{Caller: alice, Audience: []string{"shop.payment.v1.PaymentService"}}), orders, false},
		{"another issuer", passporttest.Token(passporttest.Claims{Caller: alice, Issuer: "someone"}), orders, false},
		{"no subject", passporttest.Token(passporttest.Claims{Caller: passport.Caller{Roles: []string{"admin"}}}), orders, false},
		{"HS256 with the public key", hsTok, orders, false},
		{"alg none", noneTok, orders, false},
		{"not a token", "x-user-roles: admin", orders, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 2 { // verified, then from the cache: the same answer
				c, err := v.Verify(tt.token, tt.service)
				if (err == nil) != tt.ok {
					t.Fatalf("Verify = %+v, %v; want ok=%v", c, err, tt.ok)
				}
				if tt.ok && (c.Subject != alice.Subject || !slices.Equal(c.Roles, alice.Roles) || c.Auth != "jwt" || c.Source != "idp") {
					t.Fatalf("caller %+v, want %+v", c, alice)
				}
			}
		})
	}
	// A cached passport expires with its token.
	tok := passporttest.Token(passporttest.Claims{Caller: alice, IssuedAt: now, TTL: time.Minute})
	if _, err := v.Verify(tok, orders); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute + passport.DefaultLeeway + time.Second)
	if _, err := v.Verify(tok, orders); err == nil {
		t.Error("an expired passport was served from the cache")
	}
}

// intercept returns a call of /shop.order.v1.OrderService/Who through v's unary interceptor,
// with the outgoing metadata of ctx as the incoming metadata; it answers the caller the
// handler sees. (services/order's tests do the same over a real connection to the real
// service.)
func intercept(v *passport.Verifier) func(ctx context.Context) (passport.Caller, error) {
	return func(ctx context.Context) (passport.Caller, error) {
		md, _ := metadata.FromOutgoingContext(ctx)
		in := metadata.NewIncomingContext(context.Background(), md)
		var got passport.Caller
		_, err := v.UnaryServerInterceptor()(in, nil, &grpc.UnaryServerInfo{FullMethod: "/" + orders + "/Who"}, func(ctx context.Context, _ any) (any, error) {
			c, err := passport.Require(ctx)
			got = c
			return nil, err
		})
		return got, err
	}
}

func TestInterceptor(t *testing.T) {
	t.Parallel()
	call := intercept(newVerifier(t, passport.Options{JWKS: passporttest.JWKS()}))
	tok := passporttest.Token(passporttest.Claims{Caller: alice})
	tests := []struct {
		name string
		md   metadata.MD
		want codes.Code
	}{
		{"the gateway's passport", passporttest.Metadata(alice), codes.OK},
		{"forged x-user-* metadata", metadata.Pairs("x-user-id", "mallory", "x-user-roles", "admin", "x-user-auth", "jwt"), codes.Unauthenticated},
		{"a passport and forged x-user-*", metadata.Join(passporttest.Metadata(alice), metadata.Pairs("x-user-id", "mallory", "x-user-roles", "admin")), codes.OK},
		{"a passport twice", metadata.Pairs(passport.MDPassport, tok, passport.MDPassport, tok), codes.Unauthenticated},
		{"a bad passport", metadata.Pairs(passport.MDPassport, passporttest.Token(passporttest.Claims{Caller: alice, Key: passporttest.OtherKey})), codes.Unauthenticated},
		{"no metadata", nil, codes.Unauthenticated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := call(metadata.NewOutgoingContext(context.Background(), tt.md))
			if status.Code(err) != tt.want {
				t.Fatalf("code %v (%v), want %v", status.Code(err), err, tt.want)
			}
			if tt.want == codes.OK && (c.Subject != alice.Subject || c.IsAdmin()) {
				t.Errorf("caller %+v, want alice without admin", c)
			}
		})
	}
}

// TestRotation is a key rotation as the README describes it, seen by a service reading a JWKS
// file: the new key is added to the file, the gateway switches to it, the old key is removed;
// calls keep working at every step, and the old key's passports stop counting once it is gone.
func TestRotation(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	file := filepath.Join(t.TempDir(), "jwks.json")
	write := func(keys ...ed25519.PrivateKey) {
		t.Helper()
		tmp := file + ".tmp"
		if err := os.WriteFile(tmp, passporttest.JWKS(keys...), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, file); err != nil { // as a deploy tool replaces it
			t.Fatal(err)
		}
	}
	oldKey, newKey := passporttest.Key, passporttest.OtherKey
	write(oldKey)
	v := newVerifier(t, passport.Options{JWKSFile: file, Now: clk.Now})
	byOld := passporttest.Token(passporttest.Claims{Caller: alice, Key: oldKey, IssuedAt: clk.Now()})
	byNew := passporttest.Token(passporttest.Claims{Caller: alice, Key: newKey, IssuedAt: clk.Now()})
	verify := func(step, tok string, ok bool) {
		t.Helper()
		if _, err := v.Verify(tok, orders); (err == nil) != ok {
			t.Errorf("%s: Verify = %v, want ok=%v", step, err, ok)
		}
	}
	verify("before", byOld, true)
	verify("before", byNew, false)
	// 1. The new key is published beside the old one.
	write(oldKey, newKey)
	clk.Advance(passport.DefaultRefreshInterval)
	verify("both published", byOld, true)
	if ids := v.KeyIDs(); len(ids) != 2 {
		t.Fatalf("trusted kids %v, want two", ids)
	}
	// 2. The gateway signs with the new key: both keep working.
	verify("switched", byNew, true)
	verify("switched", byOld, true)
	// 3. The old key is removed from the file: its passports no longer count, even cached.
	write(newKey)
	clk.Advance(passport.DefaultRefreshInterval)
	verify("old removed", byNew, true)
	verify("old removed", byOld, false)
	// A broken file keeps the keys in use.
	if err := os.WriteFile(file, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	clk.Advance(passport.DefaultRefreshInterval)
	verify("broken file", byNew, true)
}

// TestUnknownKIDReadsTheFile checks that a passport signed by a key just added to the file is
// accepted before the next periodic read: the file is read at once (at most once a second).
func TestUnknownKIDReadsTheFile(t *testing.T) {
	t.Parallel()
	clk := &clock{t: time.Now()}
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, passporttest.JWKS(passporttest.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, passport.Options{JWKSFile: file, Now: clk.Now, RefreshInterval: time.Hour})
	if err := os.WriteFile(file, passporttest.JWKS(passporttest.Key, passporttest.OtherKey), 0o600); err != nil {
		t.Fatal(err)
	}
	// Calls arriving together with the new key all find it: those that do not read the file
	// themselves wait for the read under way (the fault suite's concurrent orders were refused).
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := alice
			c.Subject = fmt.Sprint("caller-", i) // a passport of its own: no verification cache hit
			_, err := v.Verify(passporttest.Token(passporttest.Claims{Caller: c, Key: passporttest.OtherKey}), orders)
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("a passport of a key just added: %v", err)
		}
	}
}

func TestNewVerifierErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		name string
		opts passport.Options
	}{
		{"nothing to trust", passport.Options{}},
		{"both", passport.Options{JWKS: passporttest.JWKS(), JWKSFile: "x"}},
		{"missing file", passport.Options{JWKSFile: filepath.Join(dir, "nope.json")}},
		{"empty set", passport.Options{JWKS: []byte(`{"keys":[]}`)}},
		{"an RSA key", passport.Options{JWKS: []byte(`{"keys":[{"kty":"RSA","kid":"a","n":"xx","e":"AQAB"}]}`)}},
		{"no kid", passport.Options{JWKS: []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}`)}},
		{"short x", passport.Options{JWKS: []byte(`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"a"}]}`)}},
		{"not json", passport.Options{JWKS: []byte(`keys`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := passport.NewVerifier(tt.opts); err == nil {
				t.Fatal("NewVerifier accepted it")
			}
		})
	}
}

func TestCanSee(t *testing.T) {
	t.Parallel()
	tests := []struct {
		caller passport.Caller
		owner  string
		want   bool
	}{
		{passport.Caller{Subject: "alice"}, "alice", true},
		{passport.Caller{Subject: "bob"}, "alice", false},
		{passport.Caller{Subject: "root", Roles: []string{"admin"}}, "alice", true},
		{passport.Caller{Subject: "eve", Roles: []string{"administrator"}}, "alice", false},
		{passport.Caller{}, "", false},
	}
	for _, tc := range tests {
		t.Run(tc.caller.Subject+"->"+tc.owner, func(t *testing.T) {
			if got := tc.caller.CanSee(tc.owner); got != tc.want {
				t.Fatalf("CanSee = %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkVerify is a service's cost per call: "cached" for a passport seen before (every
// call but the first of a caller's passport), "signature" verifying each time.
func BenchmarkVerify(b *testing.B) {
	tok := passporttest.Token(passporttest.Claims{Caller: alice})
	b.Run("cached", func(b *testing.B) {
		v := newVerifier(b, passport.Options{JWKS: passporttest.JWKS()})
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(tok, orders); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("signature", func(b *testing.B) {
		v := newVerifier(b, passport.Options{JWKS: passporttest.JWKS(), CacheSize: 1})
		other := passporttest.Token(passporttest.Claims{Caller: passport.Caller{Subject: "bob"}})
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			t := tok
			if i%2 == 1 {
				t = other // a cache of one: each call evicts the other's entry
			}
			if _, err := v.Verify(t, orders); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestWatch checks that an idle service takes a key change: Watch reads the file on its own.
func TestWatch(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(file, passporttest.JWKS(passporttest.Key), 0o600); err != nil {
		t.Fatal(err)
	}
	v := newVerifier(t, passport.Options{JWKSFile: file, RefreshInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); v.Watch(ctx) }()
	defer func() { cancel(); <-done }()
	if err := os.WriteFile(file, passporttest.JWKS(passporttest.Key, passporttest.OtherKey), 0o600); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(v.KeyIDs()) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("Watch did not read the new file")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
