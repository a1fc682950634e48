package testredis

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
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
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		need(t, "this test needs redis-server (Debian: apt-get install redis-server): "+err.Error())
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	_ = ln.Close()
	dir := t.TempDir()
	args := []string{
		"--port", "0", "--tls-port", strconv.Itoa(port), "--bind", "127.0.0.1",
		"--tls-cert-file", certFile, "--tls-key-file", keyFile,
		"--save", "", "--appendonly", "no", "--dir", dir,
	}
	if clientCAFile != "" {
		args = append(args, "--tls-ca-cert-file", clientCAFile, "--tls-auth-clients", "yes")
	} else {
		args = append(args, "--tls-auth-clients", "no")
	}
	cmd := exec.Command(bin, args...)
	logFile, err := os.Create(filepath.Join(dir, "redis.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		_ = logFile.Close()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, "redis.log"))
			need(t, "redis-server with --tls-port exited (built without TLS?):\n"+string(log))
		default:
		}
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			return &TLSServer{Addr: addr}
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not listen within 10s", addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func need(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}
