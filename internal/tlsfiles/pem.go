package tlsfiles

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
)

// MinVersion is the lowest TLS version every configuration of this package accepts.
const MinVersion = tls.VersionTLS12

// parsePair builds a certificate from PEM chain and key; an error when they do not match or
// do not parse (a half-written file).
func parsePair(certPEM, keyPEM []byte) (tls.Certificate, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("certificate and key: %w", err)
	}
	return cert, nil // Leaf is filled in by X509KeyPair since Go 1.23
}

// parsePool builds a pool of every certificate of a PEM bundle; an error when a block does not
// parse or there is none.
func parsePool(bundle []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA bundle: %w", err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("CA bundle: no certificate")
	}
	return pool, nil
}
