package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeReloadsWhenTheFileChanges runs the program with a file an editor replaces by a
// rename (no SIGHUP) and an environment override (GATEWAY__CORS__ALLOWED_ORIGINS): the new
// file is in force after the watch's reload, the override stays in force across it, and an
// override naming no setting, set before the next change, has that reload refused, naming it.
func TestServeReloadsWhenTheFileChanges(t *testing.T) {
	const envOrigin, fileOrigin = "https://env.shop.example", "https://file.shop.example"
	t.Setenv("GATEWAY__CORS__ALLOWED_ORIGINS", envOrigin)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := ln.Addr().String()
	_ = ln.Close()
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.yaml")
	base := "listen: 127.0.0.1:0\nupstreams: {shop.inventory.v1.InventoryService: {addresses: [\"" + dead + "\"]}}\n" +
		passportYAML(t) + "cors: {allowed_origins: [\"" + fileOrigin + "\"]}\n"
	replace := func(s string) { // as an editor saves: a new file renamed over the old one
		t.Helper()
		tmp := filepath.Join(dir, ".gateway.yaml.tmp")
		if err := os.WriteFile(tmp, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, path); err != nil {
			t.Fatal(err)
		}
	}
	replace(base)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"-config", path}, &bytes.Buffer{}, logs) }()
	var addr string
	poll(t, "the watch's log line", func() bool {
		if l := logs.logLine("gateway listening"); l != nil {
			addr, _ = l["addr"].(string)
		}
		return addr != "" && logs.logLine("config file watched") != nil
	})
	// get answers ListItems (public; its upstream is dead: 503) to a page of origin.
	get := func(origin string) (int, string) {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/inventory/items", nil)
		req.Header.Set("Origin", origin)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		return resp.StatusCode, resp.Header.Get("Access-Control-Allow-Origin")
	}
	if code, allow := get(envOrigin); code != 503 || allow != envOrigin {
		t.Fatalf("before: %d, allowed origin %q; want 503 and the environment's %s", code, allow, envOrigin)
	}
	if _, allow := get(fileOrigin); allow != "" {
		t.Errorf("the file's origin %s allowed despite the override", fileOrigin)
	}

	replace(base + "routes: {shop.inventory.v1.InventoryService/ListItems: {auth: required}}\n")
	poll(t, "the reload", func() bool { return logs.logLine("config reloaded") != nil })
	if logs.logLine("config file changed") == nil {
		t.Error("no log line saying the file changed")
	}
	if code, allow := get(envOrigin); code != 401 || allow != envOrigin {
		t.Errorf("after the change: %d, allowed origin %q; want 401 and %s", code, allow, envOrigin)
	}

	t.Setenv("GATEWAY__CORS__ALLOWED_ORIGNS", fileOrigin) // a typo
	replace(base)
	poll(t, "the refusal", func() bool {
		l := logs.logLine("config reload refused; the previous configuration stays")
		return l != nil && strings.Contains(l["error"].(string), "GATEWAY__CORS__ALLOWED_ORIGNS")
	})
	if code, _ := get(envOrigin); code != 401 {
		t.Errorf("after the refused reload: %d, want 401 (the configuration before)", code)
	}
	cancel()
	waitRun(t, done, 10*time.Second)
}

// TestEnvOverridesEverywhere: serving, `gateway routes` and `gateway check -config` read the
// file with the same overrides, and refuse a variable naming no setting.
func TestEnvOverridesEverywhere(t *testing.T) {
	const example = "../../gateway/config/example.yaml"
	t.Run("routes shows an override", func(t *testing.T) {
		t.Setenv("GATEWAY__ROUTES__SHOP_ORDER_V1_ORDERSERVICE_CREATEORDER__TIMEOUT", "7s")
		var out, errOut bytes.Buffer
		if err := run(context.Background(), []string{"routes", "-config", example}, &out, &errOut); err != nil {
			t.Fatalf("run: %v (%s)", err, errOut.String())
		}
		if !strings.Contains(out.String(), "7s (yaml-rpc)") {
			t.Errorf("routes output lacks the overridden timeout 7s (yaml-rpc):\n%s", out.String())
		}
	})
	typo := "GATEWAY__SERVER__READ_TIMOUT"
	tests := []struct {
		name string
		args []string
	}{
		{"serve", []string{"-config", example}},
		{"routes", []string{"routes", "-config", example}},
		{"check", []string{"check", "-proto", "../../proto", "-import", "../../third_party/googleapis", "-config", example}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" refuses a typo", func(t *testing.T) {
			t.Setenv(typo, "5s")
			var out, errOut bytes.Buffer
			err := run(context.Background(), tt.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error(), typo) {
				t.Fatalf("run error = %v, want one naming %s", err, typo)
			}
		})
	}
}
