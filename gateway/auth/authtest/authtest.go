// Package authtest has helpers for tests of gateway/auth and of what runs behind it: key pairs,
// a signer of arbitrary (also hostile) tokens, JWKS documents and a real JWKS server on
// 127.0.0.1 that counts its fetches.
package authtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// Keys is one key pair of each supported type.
type Keys struct {
	RSA *rsa.PrivateKey
	EC  *ecdsa.PrivateKey
	Ed  ed25519.PrivateKey
}

// NewKeys generates an RSA-2048, an ECDSA P-256 and an Ed25519 key pair.
func NewKeys() (*Keys, error) {
	r, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	e, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	return &Keys{RSA: r, EC: e, Ed: ed}, nil
}

// SHA256Hex returns the hex SHA-256 of s, the form auth.APIKey.SHA256 takes.
func SHA256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// B64 is the unpadded base64url of JWS segments.
func B64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// SignRaw returns header.payload.signature, signing the given JSON texts as they are (so a
// test can sign duplicate members or odd types). alg picks the golang-jwt signing method; an
// alg it does not know (or key == nil) gives an empty signature.
func SignRaw(alg string, key any, headerJSON, payloadJSON string) string {
	signing := B64([]byte(headerJSON)) + "." + B64([]byte(payloadJSON))
	m := jwt.GetSigningMethod(alg)
	if m == nil || key == nil {
		return signing + "."
	}
	sig, err := m.Sign(signing, key)
	if err != nil {
		panic(fmt.Sprintf("authtest: signing %s with %T: %v", alg, key, err))
	}
	return signing + "." + B64(sig)
}

// Sign marshals header and claims and signs them with SignRaw. header gets "alg": alg unless it
// sets "alg" itself (a nil value removes it).
func Sign(alg string, key any, header, claims map[string]any) string {
	h := map[string]any{"alg": alg, "typ": "JWT"}
	for k, v := range header {
		if v == nil {
			delete(h, k)
			continue
		}
		h[k] = v
	}
	hj, err := json.Marshal(h)
	if err != nil {
		panic(err)
	}
	cj, err := json.Marshal(claims)
	if err != nil {
		panic(err)
	}
	return SignRaw(alg, key, string(hj), string(cj))
}

// JWK returns the public JWK of pub with kid (and alg when not empty).
func JWK(kid, alg string, pub crypto.PublicKey) map[string]any {
	m := map[string]any{"kid": kid}
	if alg != "" {
		m["alg"] = alg
	}
	switch k := pub.(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", B64(k.N.Bytes()), B64(big.NewInt(int64(k.E)).Bytes())
	case *ecdsa.PublicKey:
		pt, err := k.Bytes() // 0x04 || X || Y
		if err != nil {
			panic(err)
		}
		n := (len(pt) - 1) / 2
		m["kty"], m["crv"], m["x"], m["y"] = "EC", k.Curve.Params().Name, B64(pt[1:1+n]), B64(pt[1+n:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", B64(k)
	default:
		panic(fmt.Sprintf("authtest: JWK of %T", pub))
	}
	return m
}

// JWKS returns the document {"keys": [...]}.
func JWKS(keys ...map[string]any) []byte {
	if keys == nil {
		keys = []map[string]any{}
	}
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		panic(err)
	}
	return b
}

// PublicPEM returns pub as a PKIX "PUBLIC KEY" PEM block.
func PublicPEM(pub crypto.PublicKey) []byte {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		panic(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// JWKSServer is a real JWKS endpoint on 127.0.0.1 whose document and status a test changes
// while it runs, and which counts the requests it receives.
type JWKSServer struct {
	// URL of the JWKS document.
	URL string

	srv     *httptest.Server
	fetches atomic.Int64
	mu      sync.Mutex
	body    []byte
	status  int
}

// NewJWKSServer serves body (status 200) until the test ends.
func NewJWKSServer(t testing.TB, body []byte) *JWKSServer {
	t.Helper()
	s := &JWKSServer{body: body, status: http.StatusOK}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		body, status := s.body, s.status
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("authtest: listening: %v", err)
	}
	s.srv.Listener = ln
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	s.URL = s.srv.URL + "/jwks.json"
	return s
}

// Set replaces the document and status served from now on.
func (s *JWKSServer) Set(status int, body []byte) {
	s.mu.Lock()
	s.status, s.body = status, body
	s.mu.Unlock()
}

// Fetches returns how many requests the server has received.
func (s *JWKSServer) Fetches() int { return int(s.fetches.Load()) }

// CountingListener is a TCP listener on 127.0.0.1 that counts the connections made to it, for
// headers such as jku and x5u that must never be followed.
type CountingListener struct {
	// URL points at the listener.
	URL   string
	conns atomic.Int64
}

// NewCountingListener listens until the test ends.
func NewCountingListener(t testing.TB) *CountingListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("authtest: listening: %v", err)
	}
	c := &CountingListener{URL: "http://" + ln.Addr().String() + "/keys"}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			c.conns.Add(1)
			_ = conn.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close(); <-done })
	return c
}

// Connections returns how many connections were accepted.
func (c *CountingListener) Connections() int { return int(c.conns.Load()) }
