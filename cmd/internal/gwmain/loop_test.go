package gwmain

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"

	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/acme/shopgate/gateway/config"
	"github.com/acme/shopgate/gateway/passport"
	"github.com/acme/shopgate/gateway/server"
	"github.com/acme/shopgate/internal/shopapi"
	"github.com/prometheus/client_golang/prometheus"
)

// lockedBuffer is a log destination read while the loop writes to it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count returns how many JSON log lines have msg.
func (l *lockedBuffer) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			n++
		}
	}
	return n
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLoopReloadsWhenTheFileChanges serves a real gateway (server.Server) from a ConfigMap
// volume laid out as kubelet does, and updates the ConfigMap: a valid file is in force after
// the watch's reload (ListItems needs a token: 401 instead of the dead upstream's 503), a bad
// one is refused with the old configuration kept, the next good one is applied, and an update
// with the same content reloads nothing.
func TestLoopReloadsWhenTheFileChanges(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	dead := ln.Addr().String()
	_ = ln.Close()
	keys := filepath.Join(t.TempDir(), "passport")
	must(t, passport.EnsureKey(keys))
	base := "listen: 127.0.0.1:0\nupstreams: {shop.inventory.v1.InventoryService: {addresses: [\"" + dead + "\"]}}\n" +
		"passport: {key_dir: \"" + keys + "\"}\n"
	open := base
	closed := base + "routes: {shop.inventory.v1.InventoryService/ListItems: {auth: required}}\n"
	bad := base + "routes: {shop.inventory.v1.InventoryService/Nope: {auth: none}}\n"

	dir := t.TempDir()
	cm := newConfigMap(t, dir, "gateway.yaml", open)
	path := filepath.Join(dir, "gateway.yaml")
	load := func() (*config.Config, error) { return config.Load(path) }
	cfg, err := load()
	must(t, err)
	logs := &lockedBuffer{}
	logger := slog.New(slog.NewJSONHandler(logs, nil))
	srv, err := server.New(cfg, server.Options{Logger: logger, AccessLogWriter: io.Discard, Registerer: prometheus.NewRegistry(), Services: shopapi.Services()})
	must(t, err)
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	checks := make(chan bool, 100)
	loop := Loop{Server: srv, Logger: logger, Path: path, Load: load, ShutdownTimeout: 5 * time.Second,
		Watch: true, WatchDebounce: testDebounce, watchChecked: func(c bool) { checks <- c }}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- loop.Serve(ctx, ln, nil) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	status := func() int {
		resp, err := http.Get("http://" + ln.Addr().String() + "/v1/inventory/items")
		must(t, err)
		_ = resp.Body.Close()
		return resp.StatusCode
	}
	// waitCheck waits for the watch's next read, and returns whether it saw a change.
	waitCheck := func() bool {
		t.Helper()
		select {
		case c := <-checks:
			return c
		case <-time.After(waitFor):
			t.Fatalf("the watch did not read the file; logs:\n%s", logs)
			return false
		}
	}
	// waitLog waits until n lines have msg.
	waitLog := func(msg string, n int) {
		t.Helper()
		deadline := time.Now().Add(waitFor)
		for logs.count(msg) < n {
			if time.Now().After(deadline) {
				t.Fatalf("no %d %q lines; logs:\n%s", n, msg, logs)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	poll := func(want int) { // Serve has started the watch once the first request is answered
		t.Helper()
		waitLog("config file watched", 1)
		if got := status(); got != want {
			t.Fatalf("ListItems %d, want %d", got, want)
		}
	}
	poll(503)

	steps := []struct {
		name     string
		content  string
		changed  bool
		reloads  int // "config reloaded" lines after the step
		refusals int // "config reload refused..." lines after the step
		status   int
	}{
		{"a valid update is applied", closed, true, 1, 0, 401},
		{"a bad update is refused, the old configuration stays", bad, true, 1, 1, 401},
		{"the next valid update is applied", open, true, 2, 1, 503},
		{"an update with the same content reloads nothing", open, false, 2, 1, 503},
	}
	for _, st := range steps {
		for len(checks) > 0 { // reads of the step before
			<-checks
		}
		cm.update("gateway.yaml", st.content)
		got := waitCheck()
		for st.changed && !got { // a burst read in two parts on a loaded machine
			got = waitCheck()
		}
		if got != st.changed {
			t.Fatalf("%s: watch saw a change: %v, want %v", st.name, got, st.changed)
		}
		if st.changed {
			waitLog("config file changed", st.reloads+st.refusals)
		}
		waitLog("config reloaded", st.reloads)
		waitLog("config reload refused; the previous configuration stays", st.refusals)
		if n := logs.count("config reloaded"); n != st.reloads {
			t.Errorf("%s: %d reloads, want %d", st.name, n, st.reloads)
		}
		if got := status(); got != st.status {
			t.Errorf("%s: ListItems %d, want %d", st.name, got, st.status)
		}
	}
	if !strings.Contains(logs.String(), "InventoryService/Nope") {
		t.Errorf("the refusal does not name the problem:\n%s", logs)
	}
}
