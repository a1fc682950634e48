package auth

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ed25519"
	"errors"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// TestStaticKeySources pins which key each static KeySource gives a token, with and without
// kid.
func TestStaticKeySources(t *testing.T) {
	t.Parallel()
	pub := func(seed byte) crypto.PublicKey {
		return ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)).Public()
	}
	a, b := pub(1), pub(2)
	mustStatic := func(byKID map[string]crypto.PublicKey, unnamed ...crypto.PublicKey) KeySource {
		s, err := newStaticKeys(byKID, unnamed)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	secret := secretKey("0123456789abcdef0123456789abcdef")
	type lookup struct {
		header  map[string]any
		want    any // the key; nil when wantErr
		wantErr error
	}
	noKID := map[string]any{"alg": "EdDSA"}
	kid := func(k string) map[string]any { return map[string]any{"alg": "EdDSA", "kid": k} }
	tests := []struct {
		name    string
		keys    KeySource
		lookups []lookup
	}{
		{"one key with kid", mustStatic(map[string]crypto.PublicKey{"a": a}), []lookup{
			{noKID, a, nil},
			{kid("a"), a, nil},
			{kid("b"), nil, errUnknownKID},
		}},
		{"one key without kid", mustStatic(map[string]crypto.PublicKey{}, a), []lookup{
			{noKID, a, nil},
			{kid("a"), nil, errUnknownKID},
		}},
		{"several keys", mustStatic(map[string]crypto.PublicKey{"a": a, "b": b}), []lookup{
			{noKID, nil, errNoKID},
			{kid("a"), a, nil},
			{kid("b"), b, nil},
			{kid("c"), nil, errUnknownKID},
		}},
		{"secret", secret, []lookup{
			{noKID, []byte(secret), nil},
			{kid("any"), []byte(secret), nil},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := tt.keys.(rotating); ok {
				t.Fatal("a static source rotates")
			}
			for _, l := range tt.lookups {
				got, err := tt.keys.Key(context.Background(), &jwt.Token{Header: l.header})
				if !errors.Is(err, l.wantErr) {
					t.Fatalf("Key(%v) error = %v, want %v", l.header, err, l.wantErr)
				}
				if l.wantErr != nil {
					continue
				}
				if k, ok := got.(ed25519.PublicKey); ok {
					if !k.Equal(l.want) {
						t.Fatalf("Key(%v) = another key", l.header)
					}
				} else if !bytes.Equal(got.([]byte), l.want.([]byte)) {
					t.Fatalf("Key(%v) = %v, want the secret", l.header, got)
				}
			}
		})
	}
	t.Run("no key", func(t *testing.T) {
		if _, err := newStaticKeys(map[string]crypto.PublicKey{}, nil); err == nil {
			t.Fatal("a static source without keys was built")
		}
	})
}
