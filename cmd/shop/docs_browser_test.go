package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	cdpruntime "github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// chromium returns the path of a Chromium for headless tests. Without one the test is skipped,
// and fails under CI=true (.ci/run installs Debian's chromium).
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium on PATH (chromium, chromium-browser, google-chrome): install it with `apt-get install -y chromium` (.ci/run does)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// TestDocsInBrowser opens GET /docs of the whole stack in headless Chromium: every operation of
// /openapi.json renders, "Try it out" on the public GET /v1/inventory/items reaches the gateway
// and shows its 200, no Content-Security-Policy violation is reported, and a screenshot is saved
// (into $SCREENSHOT_DIR when set).
func TestDocsInBrowser(t *testing.T) {
	exe := chromium(t)
	st := startStack(t, t.TempDir())
	defer st.stop(t)

	// What the page must show comes from the document itself.
	resp, err := http.Get(st.base + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			OperationID string   `json:"operationId"`
			Tags        []string `json:"tags"`
		} `json:"paths"`
	}
	err = json.NewDecoder(resp.Body).Decode(&doc)
	resp.Body.Close()
	if err != nil || len(doc.Paths) == 0 {
		t.Fatalf("GET /openapi.json: %v, %d paths", err, len(doc.Paths))
	}
	var want []string // "GET /v1/orders/{id}:cancel"
	for path, ops := range doc.Paths {
		for method := range ops {
			want = append(want, strings.ToUpper(method)+" "+path)
		}
	}
	slices.Sort(want)
	listItems, ok := doc.Paths["/v1/inventory/items"]["get"]
	if !ok {
		t.Fatal("the document has no GET /v1/inventory/items")
	}

	// One deadline for the whole browser (it is stopped when it passes).
	deadline, cancelDeadline := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancelDeadline()
	alloc, cancelAlloc := chromedp.NewExecAllocator(deadline, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe), chromedp.NoSandbox, chromedp.WindowSize(1280, 1600))...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(alloc)
	defer cancel()
	problems := &syncBuffer{} // CSP violations, script errors, one per line
	if err := chromedp.Listen(ctx, func(ev any) {
		switch e := ev.(type) {
		case *cdplog.EventEntryAdded:
			if e.Entry.Level == cdplog.EntryLevelError {
				_, _ = problems.Write([]byte(e.Entry.Text + " " + e.Entry.URL + "\n"))
			}
		case *cdpruntime.EventExceptionThrown:
			_, _ = problems.Write([]byte(e.ExceptionDetails.Text + " " + e.ExceptionDetails.URL + "\n"))
		}
	}); err != nil {
		t.Fatalf("starting Chromium (%s): %v", exe, err)
	}

	op := "#operations-" + listItems.Tags[0] + "-" + listItems.OperationID
	if err := chromedp.Do(ctx, chromedp.Navigate(st.base+"/docs"), chromedp.WaitVisible(chromedp.CSS(op))); err != nil {
		t.Fatalf("rendering /docs: %v (browser errors: %q)", err, problems.String())
	}
	rendered, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll('.opblock')).map(b =>
		b.querySelector('.opblock-summary-method').textContent + ' ' + b.querySelector('.opblock-summary-path').dataset.path).sort()`))
	if err != nil {
		t.Fatalf("reading the operations: %v", err)
	}
	if !slices.Equal(rendered, want) {
		t.Errorf("operations rendered:\n%q\nwant those of /openapi.json:\n%q", rendered, want)
	}

	const answered = `"path":"/v1/inventory/items","status":200`
	before := strings.Count(st.stderr.String(), answered)
	if err := chromedp.Do(ctx,
		chromedp.Click(chromedp.CSS(op+" .opblock-summary-control")),
		chromedp.Click(chromedp.CSS(op+" .try-out__btn")),
		chromedp.Click(chromedp.CSS(op+" .execute")),
	); err != nil {
		t.Fatalf("Try it out on GET /v1/inventory/items: %v (browser errors: %q)", err, problems.String())
	}
	status, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(op+" .live-responses-table tbody .response-col_status")))
	if err != nil {
		t.Fatalf("reading the response panel: %v (browser errors: %q)", err, problems.String())
	}
	if strings.TrimSpace(status) != "200" {
		t.Errorf("Try it out: the response panel shows status %q, want 200", status)
	}
	if after := strings.Count(st.stderr.String(), answered); after != before+1 {
		t.Errorf("the gateway's access log has %d answered GET /v1/inventory/items after Try it out, want %d", after, before+1)
	}

	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)) // 100: PNG
	if err != nil {
		t.Fatalf("screenshot: %v", err)
	}
	dir := os.Getenv("SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "docs.png")
	if err := os.WriteFile(file, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of /docs after Try it out: %s (%d bytes)", file, len(png))
	if p := problems.String(); p != "" {
		t.Errorf("the browser reported errors (a Content-Security-Policy violation?):\n%s", p)
	}
}
