package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logLine returns the first JSON log line whose msg is msg, or nil.
func (s *syncBuffer) logLine(msg string) map[string]any {
	for _, l := range strings.Split(s.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil && m["msg"] == msg {
			return m
		}
	}
	return nil
}

func poll(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRoutesSubcommand(t *testing.T) {
	var out, errOut bytes.Buffer
	if err := run(context.Background(), []string{"routes", "-config", "../../gateway/config/example.yaml"}, &out, &errOut); err != nil {
		t.Fatalf("run: %v (%s)", err, errOut.String())
	}
	text := out.String()
	for _, want := range []string{
		"METHOD", "PATH", "RPC", "AUTH", "ROLES", "RATE LIMIT", "TIMEOUT", "IDEMPOTENT", "FALLBACK",
		"POST    /v1/orders ", "/shop.order.v1.OrderService/CreateOrder", "customer,admin", "20/1m0s burst 5",
		"/shop.inventory.v1.InventoryService/ListItems", `200 {"items":[]}`,
		"/shop.payment.v1.PaymentService/RefundPayment",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("routes output lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(strings.TrimSpace(text), "\n"); n != 11 {
		t.Errorf("routes output has %d rows, want 11", n)
	}
}

func TestRunErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("listen: 127.0.0.1:0\nroutez: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unknown := filepath.Join(dir, "unknown.yaml")
	if err := os.WriteFile(unknown, []byte("routes: {shop.order.v1.OrderService/Nope: {timeout: 1s}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown key", []string{"-config", bad}, "routez"},
		{"missing file", []string{"-config", filepath.Join(dir, "none.yaml")}, "none.yaml"},
		{"unknown RPC", []string{"routes", "-config", unknown}, "shop.order.v1.OrderService/Nope"},
		{"bad flag", []string{"-nope"}, "nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error()+errOut.String(), tt.want) {
				t.Fatalf("run error = %v (stderr %q), want one naming %q", err, errOut.String(), tt.want)
			}
		})
	}
}

// TestServeReloadStop runs the binary's run: it serves, reloads on SIGHUP (and keeps the old
// configuration when the new file is bad), and stops gracefully when its context ends.
func TestServeReloadStop(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	_ = ln.Close()
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	base := "listen: 127.0.0.1:0\nupstreams: {shop.inventory.v1.InventoryService: {addresses: [\"" + dead + "\"]}}\n"
	write := func(s string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(base)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", path}, &bytes.Buffer{}, logs) }()

	var addr string
	poll(t, "the listening log line", func() bool {
		if l := logs.logLine("gateway listening"); l != nil {
			addr, _ = l["addr"].(string)
		}
		return addr != ""
	})
	get := func(p string) int {
		resp, err := http.Get("http://" + addr + p)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	if got := get("/healthz"); got != 200 {
		t.Fatalf("/healthz = %d", got)
	}
	// ListItems is public; with no credential it reaches the (dead) upstream: 503.
	if got := get("/v1/inventory/items"); got != 503 {
		t.Fatalf("before reload: %d, want 503", got)
	}

	write(base + "routes: {shop.inventory.v1.InventoryService/ListItems: {auth: required}}\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, "the reload log line", func() bool { return logs.logLine("config reloaded") != nil })
	if got := get("/v1/inventory/items"); got != 401 {
		t.Errorf("after reload: %d, want 401", got)
	}

	write(base + "routes: {shop.inventory.v1.InventoryService/Nope: {auth: none}}\n")
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	poll(t, "the refusal log line", func() bool {
		l := logs.logLine("config reload refused; the previous configuration stays")
		return l != nil && strings.Contains(l["error"].(string), "InventoryService/Nope")
	})
	if got := get("/v1/inventory/items"); got != 401 {
		t.Errorf("after a refused reload: %d, want 401 (old config)", got)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not stop")
	}
	if logs.logLine("gateway stopped") == nil {
		t.Error("no stop log line")
	}
}
