// Package svcmaintest runs a service binary's run function in a test, as the binary would run.
package svcmaintest

import (
	"bufio"
	"context"
	"io"
	"strings"
	"testing"
	"time"
)

// RunFunc is a binary's whole program: it serves until ctx ends, printing
// "listening on <addr>" to stdout once serving.
type RunFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// Start runs run(args) in the background and returns the address it listens on and a function
// that stops it (the equivalent of SIGTERM) and returns run's error. It fails t if run ends
// early or prints no listening line within 10s.
func Start(t *testing.T, run RunFunc, args ...string) (string, func() error) {
	t.Helper()
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
