package testredis

import (
	"context"
	"crypto/tls"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// server is one redis-server (or redis-sentinel) process of a test, killed when the test ends.
type server struct {
	addr   string
	dir    string
	cmd    *exec.Cmd
	exited chan struct{}
	once   sync.Once
}

// redisServer returns the path of the machine's redis-server, or skips the test (fails it under
// CI=true).
func redisServer(t testing.TB) string {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		need(t, "this test needs redis-server 7 (Debian: apt-get install redis-server): "+err.Error())
	}
	return bin
}

// freePort returns a port of 127.0.0.1 free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// start runs redis-server with args in dir (its log there too) and waits until port listens.
// It is killed at the test's end; one that exits before listening fails the test with its log.
func start(t testing.TB, dir string, port int, args ...string) *server {
	t.Helper()
	s, log := launch(t, dir, port, args...)
	if s == nil {
		t.Fatalf("redis-server %v exited before listening on port %d:\n%s", args, port, log)
	}
	return s
}

// launch is start, returning nil and the process's log when it exits before listening.
func launch(t testing.TB, dir string, port int, args ...string) (*server, string) {
	t.Helper()
	bin := redisServer(t)
	logPath := filepath.Join(dir, "redis.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), dir: dir, exited: make(chan struct{})}
	s.cmd = exec.Command(bin, args...) //nolint:gosec // the machine's redis-server, arguments of the test
	s.cmd.Dir = dir
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	if err := s.cmd.Start(); err != nil {
		_ = logFile.Close()
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); _ = logFile.Close(); close(s.exited) }()
	t.Cleanup(s.kill)
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-s.exited:
			log, _ := os.ReadFile(logPath)
			return nil, string(log)
		default:
		}
		if c, err := net.DialTimeout("tcp", s.addr, 100*time.Millisecond); err == nil {
			_ = c.Close()
			return s, ""
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s did not listen within 10s", s.addr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// kill stops the process at once (SIGKILL: a crash, no shutdown save) and waits for it.
func (s *server) kill() {
	s.once.Do(func() {
		_ = s.cmd.Process.Kill()
		<-s.exited
	})
}

// newDir returns a new folder of t.TempDir() named name.
func newDir(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// baseArgs are the arguments of every data node: loopback only, no persistence, a replica's
// full sync at once (not after the default 5s of diskless sync delay).
func baseArgs(dir string) []string {
	return []string{"--bind", "127.0.0.1", "--protected-mode", "no", "--save", "", "--appendonly", "no", "--dir", dir,
		"--repl-diskless-sync-delay", "0"}
}

// client is a plain go-redis client of one process, for the set-up, closed at the test's end.
func client(t testing.TB, addr string, tlsConfig *tls.Config) *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: addr, TLSConfig: tlsConfig, DialTimeout: 2 * time.Second, ReadTimeout: 5 * time.Second, DisableIdentity: true})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// waitFor polls cond every 20ms until it holds, failing t with what after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func(ctx context.Context) (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ok, state := cond(ctx)
		cancel()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v (last: %s)", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
