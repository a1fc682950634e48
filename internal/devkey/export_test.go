package devkey

import "crypto/ed25519"

// Accessors for the tests: the binaries read the kid and the public key from the files
// (JWKSFile, PublicKeyFile) or the served JWKS, never from a Key.

func (k *Key) KID() string                  { return k.kid }
func (k *Key) PublicKey() ed25519.PublicKey { return k.priv.Public().(ed25519.PublicKey) }
func (k *Key) JWKS() []byte                 { return append([]byte(nil), k.jwks...) }
