package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAdminListenAndDrain runs the program with server.admin_listen and a drain delay: both
// addresses are logged, /metrics and /readyz are on the admin listener only, and when the
// context ends (SIGTERM) the admin /readyz answers 503 draining while the public listener
// still serves, until the delay ends and run returns, each phase logged.
func TestAdminListenAndDrain(t *testing.T) {
	_, upAddr := startInventory(t)
	path := filepath.Join(t.TempDir(), "gateway.yaml")
	yaml := "listen: 127.0.0.1:0\nserver: {admin_listen: '127.0.0.1:0', drain_delay: 1500ms}\n" + passportYAML(t) +
		"upstreams: {shop.inventory.v1.InventoryService: {addresses: [\"" + upAddr + "\"]}}\n"
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", path}, &bytes.Buffer{}, logs) }()
	var pub, admin string
	poll(t, "the listening log lines", func() bool {
		if l := logs.logLine("gateway listening"); l != nil {
			pub, _ = l["addr"].(string)
		}
		if l := logs.logLine("gateway admin listening"); l != nil {
			admin, _ = l["addr"].(string)
		}
		return pub != "" && admin != ""
	})
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	get := func(url string) (int, string) {
		resp, err := fresh.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	poll(t, "the admin /readyz to answer 200", func() bool { s, _ := get("http://" + admin + "/readyz"); return s == 200 })
	tests := []struct {
		url        string
		wantStatus int
		wantInBody string
	}{
		{"http://" + pub + "/metrics", 404, `"code":5`},
		{"http://" + pub + "/readyz", 404, `"code":5`},
		{"http://" + pub + "/healthz", 200, "ok"},
		{"http://" + pub + "/v1/inventory/items/sku-1", 200, "widget"},
		{"http://" + admin + "/metrics", 200, "gateway_access_log_dropped_total"},
		{"http://" + admin + "/healthz", 200, "ok"},
	}
	for _, tt := range tests {
		if s, body := get(tt.url); s != tt.wantStatus || !strings.Contains(body, tt.wantInBody) {
			t.Errorf("GET %s: %d %s, want %d with %s", tt.url, s, body, tt.wantStatus, tt.wantInBody)
		}
	}

	start := time.Now()
	cancel() // SIGTERM
	poll(t, "the admin /readyz to say draining", func() bool {
		s, body := get("http://" + admin + "/readyz")
		return s == 503 && strings.Contains(body, `"draining":true`)
	})
	if s, body := get("http://" + pub + "/v1/inventory/items/sku-2"); s != 200 {
		t.Errorf("a request during the drain delay: %d %s", s, body)
	}
	waitRun(t, done, 10*time.Second)
	if took := time.Since(start); took < 1500*time.Millisecond {
		t.Errorf("run stopped %s after the signal, before the drain delay's 1.5s", took)
	}
	for _, msg := range []string{"gateway draining: /readyz answers 503, requests are still served",
		"gateway shutting down: listener closed, in-flight requests finish", "gateway stopped"} {
		if logs.logLine(msg) == nil {
			t.Errorf("no log line %q", msg)
		}
	}
}

// TestAfterFirst checks that the first signal (the one that starts the drain) is not taken for
// the second (which cuts the delay short).
func TestAfterFirst(t *testing.T) {
	tests := []struct {
		name string
		sent []os.Signal
		want os.Signal // nil: nothing forwarded
	}{
		{"first only", []os.Signal{syscall.SIGTERM}, nil},
		{"second", []os.Signal{syscall.SIGINT, syscall.SIGTERM}, syscall.SIGTERM},
		{"third kept out while the second waits", []os.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGTERM}, syscall.SIGINT},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sigs := make(chan os.Signal) // unbuffered: each send returns once the goroutine has it
			again, stop := afterFirst(sigs)
			for _, s := range tt.sent {
				sigs <- s
			}
			stop() // every value sent was handled: again holds what was forwarded
			var got os.Signal
			select {
			case got = <-again:
			default:
			}
			if got != tt.want {
				t.Errorf("forwarded %v, want %v", got, tt.want)
			}
		})
	}
}
