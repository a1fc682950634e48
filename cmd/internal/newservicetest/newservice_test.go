package newservicetest

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// echoProto is the new service: one GET route, open to everyone (the echo server verifies no
// passport).
const echoProto = `syntax = "proto3";

package shop.echo.v1;

import "gateway/v1/policy.proto";
import "google/api/annotations.proto";

option go_package = "github.com/acme/shopgate/gen/shop/echo/v1;echov1";

// EchoService answers with what it is given.
service EchoService {
  // Echo returns the message.
  rpc Echo(EchoRequest) returns (EchoResponse) {
    option (google.api.http) = {get: "/v1/echo/{message}"};
    option (gateway.v1.policy) = {auth: AUTH_MODE_NONE};
  }
}

// EchoRequest holds the message.
message EchoRequest {
  // The message.
  string message = 1;
}

// EchoResponse holds the message back.
message EchoResponse {
  // The message.
  string message = 1;
}
`

// echoMain is the team's server: the generated service on the repository's gRPC server,
// printing its address and stopping on SIGTERM.
const echoMain = `package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	echov1 "github.com/acme/shopgate/gen/shop/echo/v1"
	"github.com/acme/shopgate/services/grpcserver"
	"google.golang.org/grpc/health"
)

type echo struct{ echov1.UnimplementedEchoServiceServer }

func (echo) Echo(_ context.Context, r *echov1.EchoRequest) (*echov1.EchoResponse, error) {
	return &echov1.EchoResponse{Message: r.GetMessage()}, nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	hs := health.NewServer()
	srv := grpcserver.New(grpcserver.Options{Services: []string{echov1.EchoService_ServiceDesc.ServiceName}, Health: hs})
	echov1.RegisterEchoServiceServer(srv, echo{})
	go func() { <-ctx.Done(); grpcserver.Stop(srv, hs, 5*time.Second) }()
	fmt.Println(ln.Addr())
	_ = srv.Serve(ln)
}
`

const echoService = "shop.echo.v1.EchoService"

// TestNewServiceNeedsNoGatewayCode adds shop.echo.v1.EchoService to a copy of the repository
// with a proto and one upstream line, and shows it listed by `gateway routes` and served.
func TestNewServiceNeedsNoGatewayCode(t *testing.T) {
	root := moduleRoot(t)
	tools := pinnedTools(t, root)
	dir := filepath.Join(t.TempDir(), "shopgate")
	copyModule(t, root, dir)
	if err := os.Symlink(tools, filepath.Join(dir, ".tools")); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "proto/shop/echo/v1/echo.proto"), echoProto)
	write(t, filepath.Join(dir, "cmd/echod/main.go"), echoMain)

	// The team's steps: generate, build.
	sh(t, dir, "make", "generate")
	if reg := read(t, filepath.Join(dir, "gen/registry/registry.go")); !strings.Contains(reg, "echov1.RegisterEchoServiceHandlerClient") {
		t.Fatalf("the generated registry does not list %s:\n%s", echoService, reg)
	}
	bin := filepath.Join(dir, "bin")
	sh(t, dir, "go", "build", "-o", bin+string(filepath.Separator), "./cmd/gateway", "./cmd/echod")
	gatewayBin := filepath.Join(bin, "gateway")

	echoAddr := start(t, filepath.Join(bin, "echod"), nil, func(line string) (string, bool) { return line, line != "" })

	// The operator's step: one upstream line (and the passport key folder every gateway needs).
	keys := filepath.Join(dir, "passport")
	sh(t, dir, gatewayBin, "passport-keys", "new", "-dir", keys)
	cfg := filepath.Join(dir, "gateway.yaml")
	write(t, cfg, fmt.Sprintf("listen: 127.0.0.1:0\npassport: {key_dir: %q}\nupstreams:\n  %s: {addresses: [%q]}\n", keys, echoService, echoAddr))

	t.Run("gateway routes lists it, served; the others without upstream", func(t *testing.T) {
		out := sh(t, dir, gatewayBin, "routes", "-config", cfg)
		var echoRow string
		for _, row := range strings.Split(strings.TrimSpace(out), "\n")[1:] {
			f := strings.Fields(row)
			switch {
			case f[2] == "/"+echoService+"/Echo":
				echoRow = row
			case f[3] != "none":
				t.Errorf("a service without an upstream is not marked: %s", row)
			}
		}
		if f := strings.Fields(echoRow); len(f) < 5 || f[0] != http.MethodGet || f[1] != "/v1/echo/{message}" || f[3] != "yes" || f[4] != "none" {
			t.Errorf("echo route row %q, want GET /v1/echo/{message} with an upstream, auth none:\n%s", echoRow, out)
		}
	})

	t.Run("served through the gateway", func(t *testing.T) {
		gw := start(t, gatewayBin, []string{"-config", cfg}, func(line string) (string, bool) {
			var l struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Msg == "gateway listening" {
				return l.Addr, true
			}
			return "", false
		})
		base := "http://" + gw
		waitReady(t, base+"/readyz")
		resp, err := http.Get(base + "/v1/echo/hello%20team")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		var got struct{ Message string }
		if resp.StatusCode != http.StatusOK || json.Unmarshal(body, &got) != nil || got.Message != "hello team" {
			t.Errorf("GET /v1/echo/hello%%20team = %d %s, want 200 {\"message\":\"hello team\"}", resp.StatusCode, body)
		}
	})
}

// moduleRoot is the folder of the module's go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// pinnedTools returns the real folder of root's .tools when the Makefile's tools are all
// built there (`make -q tools`); otherwise it skips the test, or fails it under CI=true.
func pinnedTools(t *testing.T, root string) string {
	t.Helper()
	cmd := exec.Command("make", "-q", "tools")
	cmd.Dir = root
	err := cmd.Run()
	if err == nil {
		tools, err := filepath.EvalSymlinks(filepath.Join(root, ".tools"))
		if err != nil {
			t.Fatal(err)
		}
		return tools
	}
	msg := fmt.Sprintf("the pinned buf and protoc plugins are not built in %s (make -q tools: %v): run `make tools` first", filepath.Join(root, ".tools"), err)
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// copyModule copies the module at root to dst, without its git folder, tools, build output
// and data.
func copyModule(t *testing.T, root, dst string) {
	t.Helper()
	skip := map[string]bool{".git": true, ".tools": true, "bin": true, "data": true}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if skip[rel] { // a worktree's .git is a file, its .tools may be a link
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		case d.Type().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
		}
		return nil // symlinks and the like: the module has none it needs
	})
	if err != nil {
		t.Fatalf("copying the module: %v", err)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// sh runs a command in dir, offline (every module is in the cache already), and returns its
// standard output; it fails the test with the command's output if the command fails.
func sh(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOWORK=off")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

// start runs bin with args until the end of the test, and returns what ready finds in its
// first matching line of output (stdout, then stderr, merged).
func start(t *testing.T, bin string, args []string, ready func(line string) (string, bool)) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { err := cmd.Wait(); _ = pw.CloseWithError(err); exited <- err }()
	found := make(chan string, 1)
	var log strings.Builder
	logDone := make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(pr)
		sent := false
		for sc.Scan() {
			log.WriteString(sc.Text() + "\n")
			if v, ok := ready(sc.Text()); ok && !sent {
				found <- v
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		<-logDone
		if t.Failed() {
			t.Logf("%s output:\n%s", filepath.Base(bin), log.String())
		}
	})
	select {
	case v := <-found:
		return v
	case err := <-exited:
		exited <- err
		t.Fatalf("%s exited before it was ready: %v", filepath.Base(bin), err)
	case <-time.After(30 * time.Second):
		t.Fatalf("%s not ready after 30s", filepath.Base(bin))
	}
	return ""
}

// waitReady polls url until it answers 200.
func waitReady(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(url)
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			err = errors.New(resp.Status + " " + string(body))
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s not ready: %v", url, err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
