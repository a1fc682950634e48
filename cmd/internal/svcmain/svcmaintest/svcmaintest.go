// Package svcmaintest runs a service binary's run function in a test, as the binary would run.
package svcmaintest

import (
	"bufio"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/acme/shopgate/services/passport/passporttest"
)

// RunFunc is a binary's whole program: it serves until ctx ends, printing
// "listening on <addr>" to stdout once serving.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Start runs run(args) in the background and returns the address it listens on and a function
// that stops it (the equivalent of SIGTERM) and returns run's error. It fails t if run ends
// early or prints no listening line within 10s. The service trusts passporttest's key
// (-passport-jwks before args, which may name another file).
func Start(t *testing.T, run RunFunc, args ...string) (string, func() error) {
	t.Helper()
	args = append([]string{"-passport-jwks", passporttest.WriteJWKS(t)}, args...)
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := run(ctx, args, pw, io.Discard)
		_ = pw.CloseWithError(io.EOF)
		done <- err
	}()
	addrc := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(pr).ReadString('\n')
		addrc <- strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
		_, _ = io.Copy(io.Discard, pr)
	}()
	select {
	case addr := <-addrc:
		return addr, func() error { cancel(); return <-done }
	case err := <-done:
		cancel()
		t.Fatalf("run ended early: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("no listening line")
	}
	return "", nil
}

// ConfigErrors checks that run refuses, before serving, a YAML key it does not know (naming
// it), an unknown flag and a bad log level.
func ConfigErrors(t *testing.T, run RunFunc) {
	t.Helper()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:0\nlisten_adress: x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string // in the error; "" for any error
	}{
		{"misspelt yaml key", []string{"-config", bad}, "listen_adress"},
		{"bad flag", []string{"-nope"}, ""},
		{"bad log level", []string{"-log-level", "loud", "-listen", "127.0.0.1:0"}, "log level"},
		{"no passport keys", []string{"-listen", "127.0.0.1:0", "-data", t.TempDir()}, "-passport-jwks"},
		{"bad passport keys", []string{"-listen", "127.0.0.1:0", "-data", t.TempDir(), "-passport-jwks", bad}, "jwks"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := run(context.Background(), tc.args, io.Discard, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("run %q: %v, want an error naming %q", tc.args, err, tc.want)
			}
		})
	}
}
