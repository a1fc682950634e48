// Package tlsfiles gives TLS configurations whose certificates, keys and CA bundles come from
// files that may be replaced while the process runs (certificate rotation without a restart).
//
// Each new handshake stats the files (a few microseconds, nothing compared with the handshake)
// and, when one of them changed (its modification time, its size, or the file itself: a
// Kubernetes Secret volume swaps its ..data symlink to a new folder), reads them all again.
// Material that does not load (a half-written file, a certificate that does not match its key,
// a bundle without a certificate) is logged once and the last good material stays in use until
// the files load again. Connections already open keep what they handshook with; the next new
// connection uses the new files. No goroutine runs: nothing needs closing.
//
// Server: ServerFiles (cert_file, key_file, client_ca_file) to a *tls.Config whose
// GetConfigForClient hands each handshake the current certificate and, with a client CA, the
// current client CA pool (client certificates then required). Client: ClientFiles (ca_file,
// cert_file, key_file, server_name) to a *tls.Config whose GetClientCertificate hands the
// current client certificate and whose VerifyConnection verifies the server's chain against the
// current CA pool and its name (InsecureSkipVerify is set only so that this verification
// replaces crypto/tls's own, which would use a pool fixed at start). Minimum version: TLS 1.2.
//
// Why not grpc's advancedtls with certprovider/pemfile: it covers the gRPC connections only,
// reloads on a timer in a goroutine that must be closed, and the gateway also needs the same
// rotation for its HTTPS listener, go-redis and nats.go, which take a *tls.Config. One
// mechanism for all five keeps one behaviour to document and test.
package tlsfiles
