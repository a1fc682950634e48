package scaleouttest

// Processes: the binaries, built once per test binary, run on loopback ports, killed and
// started again on the same port (the approach of cmd/internal/sagatest, whose helpers are
// test code and cannot be imported).

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// binDir holds the binaries (TestMain makes and removes it).
var (
	binDir    string
	buildOnce sync.Once
	buildErr  error
)

// binaries builds the gateway, the three services and the single-process stack once.
func binaries(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %w", err)
			return
		}
		cmd := exec.Command("go", "build", "-o", binDir+string(filepath.Separator),
			"./cmd/gateway", "./cmd/orderd", "./cmd/paymentd", "./cmd/inventoryd", "./cmd/shop")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// handedOut are the addresses freeAddr gave in this process: two processes never get the same
// port, even before either has bound it.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// freeAddr returns a loopback address whose port is free now; a restarted process takes it again.
func freeAddr(t testing.TB) string {
	t.Helper()
	handedOut.Lock()
	defer handedOut.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		_ = l.Close()
		if !handedOut.addrs[addr] {
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// need skips the test (fails it when CI=true) when what it needs is missing.
func need(t testing.TB, err error, what string) {
	t.Helper()
	if err == nil {
		return
	}
	msg := fmt.Sprintf("%s is not available: %v", what, err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// dialable reports whether addr accepts a TCP connection.
func dialable(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// proc is one process, restartable on the same address with the same arguments.
type proc struct {
	t     testing.TB
	name  string // a replica's name, for logs: "orderd-1"
	bin   string // the binary's path
	addr  string // where it listens
	args  []string
	ready func(exited <-chan struct{}) error // waits until it serves (or it exited)
	log   string                             // stdout and stderr of every run, appended

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// start runs the process and waits until it is ready, failing the test if it is not.
func (p *proc) start() {
	p.t.Helper()
	if err := p.startErr(); err != nil {
		p.t.Fatal(err)
	}
}

// startErr runs the process and waits until it is ready. It does not fail the test (a
// goroutine may call it).
func (p *proc) startErr() error {
	logf, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== %s %s\n", p.name, strings.Join(p.args, " "))
	cmd := exec.Command(p.bin, p.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("starting %s: %w", p.name, err)
	}
	done := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(done)
	}()
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	if err := p.ready(done); err != nil {
		return fmt.Errorf("%s: %w\n%s", p.name, err, tail(p.logs(), 60))
	}
	return nil
}

// kill sends SIGKILL: no shutdown code runs, as in a crash.
func (p *proc) kill() { p.signal(syscall.SIGKILL) }

func (p *proc) signal(sig syscall.Signal) {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.cmd = nil
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		p.t.Errorf("%s did not stop on %v", p.name, sig)
	}
}

func (p *proc) logs() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// grpcServing waits until the gRPC health service at addr answers SERVING.
func grpcServing(addr string, within time.Duration) func(<-chan struct{}) error {
	return func(exited <-chan struct{}) error {
		conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			return err
		}
		defer conn.Close()
		hc := healthpb.NewHealthClient(conn)
		deadline := time.Now().Add(within)
		for {
			select {
			case <-exited:
				return fmt.Errorf("exited at start")
			default:
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			res, err := hc.Check(ctx, &healthpb.HealthCheckRequest{})
			cancel()
			if err == nil && res.GetStatus() == healthpb.HealthCheckResponse_SERVING {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("not serving after %v: %v", within, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// withoutPolls drops the access lines of successful RPCs, which polling repeats by the
// hundred, so that a failure shows the lines that matter.
func withoutPolls(s string) string {
	var kept []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, `"code":"OK"`) || strings.Contains(l, `"status":200`) {
			continue
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "\n")
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
