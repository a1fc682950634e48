package proctest_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/acme/shopgate/cmd/internal/proctest"
)

func TestStartSignalLogs(t *testing.T) {
	log := filepath.Join(t.TempDir(), "sh.log")
	for run := 1; run <= 2; run++ { // a restart appends to the same log
		cmd, done, err := proctest.Start("sh", "/bin/sh", []string{"-c", "echo up; exec sleep 30"}, log)
		if err != nil {
			t.Fatal(err)
		}
		if err := proctest.GRPCServing(proctest.FreeAddr(t), time.Minute, closed()); err == nil || !strings.Contains(err.Error(), "exited") {
			t.Fatalf("GRPCServing with the process gone: %v, want exited at start", err)
		}
		deadline := time.Now().Add(10 * time.Second)
		for strings.Count(proctest.Logs(log), "up\n") < run && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if err := proctest.Signal(cmd, done, syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case <-done:
		default:
			t.Fatal("Signal returned before the process exited")
		}
	}
	got := proctest.Logs(log)
	if strings.Count(got, "=== sh -c echo up; exec sleep 30\n") != 2 || strings.Count(got, "up\n") != 2 {
		t.Fatalf("log of two runs:\n%s", got)
	}
}

func closed() <-chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}

func TestFreeAddrNeverTwice(t *testing.T) {
	seen := map[string]bool{}
	for range 50 {
		a := proctest.FreeAddr(t)
		if seen[a] || !strings.HasPrefix(a, "127.0.0.1:") {
			t.Fatalf("FreeAddr gave %s (seen before: %v)", a, seen[a])
		}
		seen[a] = true
	}
}

func TestTailAndWithoutPolls(t *testing.T) {
	log := "a\n" + `{"msg":"rpc","code":"OK"}` + "\n" + `{"msg":"request","status":200}` + "\n" + `{"msg":"rpc","code":"Unavailable"}` + "\nb"
	if got, want := proctest.WithoutPolls(log), "a\n"+`{"msg":"rpc","code":"Unavailable"}`+"\nb"; got != want {
		t.Errorf("WithoutPolls = %q, want %q", got, want)
	}
	if got := proctest.Tail("1\n2\n3\n4", 2); got != "3\n4" {
		t.Errorf("Tail = %q", got)
	}
	if got := proctest.Tail("1\n2", 5); got != "1\n2" {
		t.Errorf("Tail of a short text = %q", got)
	}
}

func TestDo(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusTeapot)
		fmt.Fprintf(w, "%s %s %s %s %s", r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Idempotency-Key"), b)
	}))
	defer srv.Close()
	status, body, err := proctest.Do(context.Background(), srv.Client(), srv.URL, "POST", "/v1/orders", "tok",
		map[string]string{"Idempotency-Key": "k1"}, `{"a":1}`)
	if err != nil || status != http.StatusTeapot || string(body) != `POST /v1/orders Bearer tok k1 {"a":1}` {
		t.Fatalf("Do = %d %q %v", status, body, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, _, err := proctest.Do(ctx, srv.Client(), srv.URL, "GET", "/", "", nil, ""); err == nil {
		t.Fatal("Do with a cancelled context succeeded")
	}
}
