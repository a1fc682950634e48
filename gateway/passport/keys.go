package passport

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// KeyFileExt is the extension of a signing key file in a key folder: an Ed25519 private key,
// PKCS #8 in a "PRIVATE KEY" PEM block. Other files are ignored.
const KeyFileExt = ".pem"

// Key is one signing key.
type Key struct {
	// ID is the key's kid: its RFC 7638 JWK thumbprint, stable whatever the file is called.
	ID string
	// Private is the private key.
	Private ed25519.PrivateKey
	// File is the file the key was read from ("" for a key made in memory).
	File string
}

// KeyID returns the kid of pub: its RFC 7638 JWK thumbprint (SHA-256, base64url).
func KeyID(pub ed25519.PublicKey) string {
	canonical := `{"crv":"Ed25519","kty":"OKP","x":"` + base64.RawURLEncoding.EncodeToString(pub) + `"}`
	sum := sha256.Sum256([]byte(canonical))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func newKey(priv ed25519.PrivateKey, file string) Key {
	return Key{ID: KeyID(priv.Public().(ed25519.PublicKey)), Private: priv, File: file}
}

// ReadKeyFile reads an Ed25519 private key (PKCS #8 PEM) from path.
func ReadKeyFile(path string) (Key, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Key{}, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return Key{}, fmt.Errorf("key file %s: no PRIVATE KEY PEM block", path)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return Key{}, fmt.Errorf("key file %s: %w", path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return Key{}, fmt.Errorf("key file %s: not an Ed25519 key", path)
	}
	return newKey(priv, path), nil
}

// ReadKeyDir reads every *.pem file of dir, sorted by name: the last one is the newest (the
// names GenerateKey gives sort by creation time). A folder with no key, or a file that is not
// an Ed25519 private key, is an error.
func ReadKeyDir(dir string) ([]Key, error) {
	names, err := keyFiles(dir)
	if err != nil {
		return nil, err
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("key folder %s: no *%s key file", dir, KeyFileExt)
	}
	keys := make([]Key, 0, len(names))
	for _, name := range names {
		k, err := ReadKeyFile(filepath.Join(dir, name))
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// keyFiles returns the names of the key files of dir, sorted.
func keyFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("key folder: %w", err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasSuffix(e.Name(), KeyFileExt) && !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	slices.Sort(names)
	return names, nil
}

// dirState is what tells that a key folder changed: each key file's name, size and
// modification time.
func dirState(dir string) (string, error) {
	names, err := keyFiles(dir)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, name := range names {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("key folder: %w", err)
		}
		fmt.Fprintf(&b, "%s\x00%d\x00%d\n", name, fi.Size(), fi.ModTime().UnixNano())
	}
	return b.String(), nil
}

// GenerateKey makes a new Ed25519 key in dir (made with mode 0700 when missing), in a file of
// mode 0600 named after the current UTC time (20261204T190501.123456789Z.pem), so that it sorts after
// every key made before it and the gateway signs with it once it reads the folder. It
// returns the new key.
func GenerateKey(dir string) (Key, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Key{}, fmt.Errorf("creating key folder: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, fmt.Errorf("generating key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return Key{}, fmt.Errorf("encoding key: %w", err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return Key{}, fmt.Errorf("writing key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(data)
	if err := errors.Join(werr, tmp.Close(), os.Chmod(tmp.Name(), 0o600)); err != nil {
		return Key{}, fmt.Errorf("writing key: %w", err)
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	for i := 0; ; i++ {
		name := stamp + KeyFileExt
		if i > 0 { // the same nanosecond: a name that sorts after it
			name = fmt.Sprintf("%s~%03d%s", stamp, i, KeyFileExt)
		}
		path := filepath.Join(dir, name)
		err := os.Link(tmp.Name(), path) // never replaces a key
		if err == nil {
			return newKey(priv, path), nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return Key{}, fmt.Errorf("storing key: %w", err)
		}
	}
}

// EnsureKey makes a key in dir with GenerateKey unless dir already holds one (the development
// stack's first start).
func EnsureKey(dir string) error {
	names, err := keyFiles(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if len(names) > 0 {
		return nil
	}
	_, err = GenerateKey(dir)
	return err
}

// JWKS returns the public halves of keys as a JWK Set (RFC 7517): OKP Ed25519 keys, each with
// its kid, alg EdDSA and use sig. Services trust the passports signed by these keys.
func JWKS(keys ...Key) []byte {
	type jwk struct {
		Kty string `json:"kty"`
		Crv string `json:"crv"`
		X   string `json:"x"`
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Use string `json:"use"`
	}
	set := struct {
		Keys []jwk `json:"keys"`
	}{Keys: []jwk{}}
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.ID] {
			continue
		}
		seen[k.ID] = true
		pub := k.Private.Public().(ed25519.PublicKey)
		set.Keys = append(set.Keys, jwk{Kty: "OKP", Crv: "Ed25519", X: base64.RawURLEncoding.EncodeToString(pub), Kid: k.ID, Alg: "EdDSA", Use: "sig"})
	}
	b, _ := json.MarshalIndent(set, "", "  ") // strings only: always marshals
	return append(b, '\n')
}

// JWKSOf returns the JWKS (JWKS) of the keys in paths: each a key file or a key folder.
func JWKSOf(paths ...string) ([]byte, error) {
	var keys []Key
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, fmt.Errorf("reading keys: %w", err)
		}
		if fi.IsDir() {
			ks, err := ReadKeyDir(p)
			if err != nil {
				return nil, err
			}
			keys = append(keys, ks...)
			continue
		}
		k, err := ReadKeyFile(p)
		if err != nil {
			return nil, err
		}
		keys = append(keys, k)
	}
	return JWKS(keys...), nil
}
