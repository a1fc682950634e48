package scaleouttest

// Processes: the binaries, built once per test binary, run on loopback ports, killed and
// started again on the same port, on cmd/internal/proctest as cmd/internal/sagatest does.

import (
	"fmt"
	"github.com/acme/shopgate/cmd/internal/proctest"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
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
		buildErr = proctest.Build(binDir, "./cmd/gateway", "./cmd/orderd", "./cmd/paymentd", "./cmd/inventoryd", "./cmd/shop")
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
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
	done <-chan struct{}
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
	cmd, done, err := proctest.Start(p.name, p.bin, p.args, p.log)
	if err != nil {
		return err
	}
	p.mu.Lock()
	p.cmd, p.done = cmd, done
	p.mu.Unlock()
	if err := p.ready(done); err != nil {
		return fmt.Errorf("%s: %w\n%s", p.name, err, proctest.Tail(p.logs(), 60))
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
	if err := proctest.Signal(cmd, done, sig); err != nil {
		p.t.Errorf("%s %v", p.name, err)
	}
}

func (p *proc) logs() string { return proctest.Logs(p.log) }

// grpcServing waits until the gRPC health service at addr answers SERVING.
func grpcServing(addr string, within time.Duration) func(<-chan struct{}) error {
	return func(exited <-chan struct{}) error { return proctest.GRPCServing(addr, within, exited) }
}
