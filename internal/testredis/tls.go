package testredis

import (
	"os"
	"strconv"
	"testing"
)

// TLSServer is a redis-server of one test, serving TLS only.
type TLSServer struct {
	// Addr is its 127.0.0.1:port.
	Addr string
}

// StartTLS starts the machine's redis-server on a free port of 127.0.0.1 with TLS only
// (--port 0), the certificate and key given, and, with clientCA set, client certificates of
// that CA required; it is stopped when the test ends. No redis-server, or one built without
// TLS: a skip (a failure under CI=true).
func StartTLS(t testing.TB, certFile, keyFile, clientCAFile string) *TLSServer {
	t.Helper()
	port := freePort(t)
	dir := newDir(t, "redis-tls")
	args := append([]string{"--port", "0", "--tls-port", strconv.Itoa(port)}, baseArgs(dir)...)
	args = append(args, tlsArgs(certFile, keyFile, clientCAFile)...)
	s, log := launch(t, dir, port, args...)
	if s == nil {
		need(t, "redis-server with --tls-port exited (built without TLS?):\n"+log)
	}
	return &TLSServer{Addr: s.addr}
}

// tlsArgs are the TLS arguments of a server with certFile and keyFile (also its client
// certificate towards its peers) and, with clientCAFile, client certificates of that CA
// required (and the peers' verified against it).
func tlsArgs(certFile, keyFile, clientCAFile string) []string {
	args := []string{"--tls-cert-file", certFile, "--tls-key-file", keyFile}
	if clientCAFile != "" {
		return append(args, "--tls-ca-cert-file", clientCAFile, "--tls-auth-clients", "yes")
	}
	return append(args, "--tls-auth-clients", "no")
}

func need(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
