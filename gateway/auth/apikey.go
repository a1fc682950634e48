package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"slices"

	"github.com/acme/shopgate/gateway/identity"
)

// apiKeys holds the configured key hashes. Lookup hashes the presented key and compares it
// with every configured hash in constant time, without stopping at a match, so that neither
// which key matched nor how much of a hash matched shows in the time taken.
type apiKeys struct {
	hashes [][sha256.Size]byte
	ids    []identity.Identity
}

func newAPIKeys(cfg []APIKey) *apiKeys {
	k := &apiKeys{}
	for _, c := range cfg {
		var h [sha256.Size]byte
		_, _ = hex.Decode(h[:], []byte(c.SHA256)) // validated in Config.validate
		k.hashes = append(k.hashes, h)
		k.ids = append(k.ids, identity.Identity{Source: APIKeyNamespace, Subject: APIKeyNamespace + subjectSeparator + c.Subject, Roles: slices.Clip(slices.Clone(c.Roles)), Method: identity.MethodAPIKey}.WithPassport())
	}
	return k
}

// lookup returns the identity of key, if it is configured.
func (k *apiKeys) lookup(key string) (identity.Identity, bool) {
	if key == "" || len(key) > MaxAPIKeyBytes {
		return identity.Identity{}, false
	}
	sum := sha256.Sum256([]byte(key))
	found := -1
	for i := range k.hashes {
		eq := subtle.ConstantTimeCompare(sum[:], k.hashes[i][:])
		found = subtle.ConstantTimeSelect(eq, i, found)
	}
	if found < 0 {
		return identity.Identity{}, false
	}
	return k.ids[found], true
}
