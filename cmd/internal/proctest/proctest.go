// Package proctest is what the tests that run the real binaries share (cmd/internal/sagatest,
// cmd/internal/scaleouttest): building them once, free loopback ports that a restarted process
// takes again, starting a process with its output appended to a log file, stopping it with a
// signal, waiting for its gRPC health service, and reading its log. It is test support: only
// tests import it.
package proctest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
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

// Build builds the packages (module-relative, "./cmd/orderd") into dir, from the module's root.
func Build(dir string, pkgs ...string) error {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return fmt.Errorf("go env GOMOD: %w", err)
	}
	cmd := exec.Command("go", append([]string{"build", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = filepath.Dir(strings.TrimSpace(string(out)))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	return nil
}

// handedOut are the addresses FreeAddr gave in this process: two processes never get the same
// port, even before either has bound it.
var handedOut = struct {
	sync.Mutex
	addrs map[string]bool
}{addrs: map[string]bool{}}

// FreeAddr returns a loopback address whose port is free now and was not handed out before in
// this process; a restarted process takes the same one again.
func FreeAddr(t testing.TB) string {
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
		if !handedOut.addrs[addr] { // closed, the port may come back for the next caller
			handedOut.addrs[addr] = true
			return addr
		}
	}
}

// Start runs bin with args, its stdout and stderr appended to the file log after a "=== name
// args" line. done is closed once the process exited (and log is closed).
func Start(name, bin string, args []string, log string) (cmd *exec.Cmd, done <-chan struct{}, err error) {
	logf, err := os.OpenFile(log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, nil, err
	}
	fmt.Fprintf(logf, "=== %s %s\n", name, strings.Join(args, " "))
	cmd = exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, nil, fmt.Errorf("starting %s: %w", name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(exited)
	}()
	return cmd, exited, nil
}

// StopTimeout is how long Signal waits for a process to exit before it kills it.
const StopTimeout = 20 * time.Second

// Signal sends sig to cmd and waits until it exited (done closed). A process still running
// after StopTimeout is killed, and Signal reports that it did not stop.
func Signal(cmd *exec.Cmd, done <-chan struct{}, sig syscall.Signal) error {
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		return nil
	case <-time.After(StopTimeout):
		_ = cmd.Process.Kill()
		<-done
		return fmt.Errorf("did not stop on %v within %v", sig, StopTimeout)
	}
}

// GRPCServing waits until the gRPC health service at addr answers SERVING, for at most within;
// it fails at once when exited is closed (the process ended at start).
func GRPCServing(addr string, within time.Duration, exited <-chan struct{}) error {
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

// Logs returns the content of the log file at path ("" when it cannot be read).
func Logs(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// WithoutPolls drops the access lines of successful RPCs and requests, which polling repeats
// by the hundred, so that a failure shows the lines that matter.
func WithoutPolls(s string) string {
	var kept []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, `"code":"OK"`) || strings.Contains(l, `"status":200`) {
			continue
		}
		kept = append(kept, l)
	}
	return strings.Join(kept, "\n")
}

// Tail returns the last n lines of s.
func Tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Do sends one HTTP request to base+path with hc (a bearer token and headers when given) and
// reads the whole answer. It never fails a test (goroutines call it): an error is a transport
// failure or ctx's end.
func Do(ctx context.Context, hc *http.Client, base, method, path, token string, hdr map[string]string, body string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, rd)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	res, err := hc.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, b, err
}
