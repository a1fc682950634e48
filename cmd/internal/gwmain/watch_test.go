package gwmain

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testDebounce keeps the tests quick; the bursts they make are all written well within it.
const testDebounce = 30 * time.Millisecond

// waitFor is how long a test waits for the watch to notice something.
const waitFor = 10 * time.Second

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// configMap is a folder laid out as kubelet lays out a ConfigMap volume: the file is a
// symlink to ..data/<name>, ..data a symlink to a timestamped folder holding the content; an
// update writes a new timestamped folder, points ..data_tmp at it, renames ..data_tmp over
// ..data (atomic), and removes the old folder.
type configMap struct {
	t       *testing.T
	dir     string
	current string // the timestamped folder ..data points at
	n       int
}

func newConfigMap(t *testing.T, dir, name, content string) *configMap {
	c := &configMap{t: t, dir: dir}
	c.update(name, content)
	must(t, os.Symlink(filepath.Join("..data", name), filepath.Join(dir, name)))
	return c
}

func (c *configMap) update(name, content string) {
	c.n++
	ts := "..2026_12_04_23_00_0" + string(rune('0'+c.n)) + ".123456789"
	must(c.t, os.Mkdir(filepath.Join(c.dir, ts), 0o755))
	write(c.t, filepath.Join(c.dir, ts, name), content)
	must(c.t, os.Symlink(ts, filepath.Join(c.dir, "..data_tmp")))
	must(c.t, os.Rename(filepath.Join(c.dir, "..data_tmp"), filepath.Join(c.dir, "..data")))
	if c.current != "" {
		must(c.t, os.RemoveAll(filepath.Join(c.dir, c.current)))
	}
	c.current = ts
}

func TestFileWatch(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, dir string) (path string, cm *configMap) // makes the file with "a: 1"
		change  func(t *testing.T, path string, cm *configMap)
		changed bool // whether the content differs after change
	}{
		{name: "plain write", changed: true,
			change: func(t *testing.T, path string, _ *configMap) { write(t, path, "a: 2") }},
		{name: "the same content written again", changed: false,
			change: func(t *testing.T, path string, _ *configMap) { write(t, path, "a: 1") }},
		{name: "an editor's rename over the file", changed: true,
			change: func(t *testing.T, path string, _ *configMap) {
				tmp := filepath.Join(filepath.Dir(path), ".gateway.yaml.swp")
				write(t, tmp, "a: 2")
				must(t, os.Rename(tmp, path))
			}},
		{name: "removed, then made again", changed: true,
			change: func(t *testing.T, path string, _ *configMap) {
				must(t, os.Remove(path))
				write(t, path, "a: 2")
			}},
		{name: "a ConfigMap update (..data swapped)", changed: true,
			setup: func(t *testing.T, dir string) (string, *configMap) {
				return filepath.Join(dir, "gateway.yaml"), newConfigMap(t, dir, "gateway.yaml", "a: 1")
			},
			change: func(t *testing.T, _ string, cm *configMap) { cm.update("gateway.yaml", "a: 2") }},
		{name: "a ConfigMap update that changes another key only", changed: false,
			setup: func(t *testing.T, dir string) (string, *configMap) {
				return filepath.Join(dir, "gateway.yaml"), newConfigMap(t, dir, "gateway.yaml", "a: 1")
			},
			change: func(t *testing.T, _ string, cm *configMap) { cm.update("gateway.yaml", "a: 1") }},
		{name: "a symlink to a file in another folder, changed there", changed: true,
			setup: func(t *testing.T, dir string) (string, *configMap) {
				other := t.TempDir()
				write(t, filepath.Join(other, "real.yaml"), "a: 1")
				path := filepath.Join(dir, "gateway.yaml")
				must(t, os.Symlink(filepath.Join(other, "real.yaml"), path))
				return path, nil
			},
			change: func(t *testing.T, path string, _ *configMap) {
				real, err := filepath.EvalSymlinks(path)
				must(t, err)
				write(t, real, "a: 2")
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "gateway.yaml")
			var cm *configMap
			if tt.setup != nil {
				path, cm = tt.setup(t, dir)
			} else {
				write(t, path, "a: 1")
			}
			checks := make(chan bool, 100)
			var logs bytes.Buffer
			fw, err := startWatch(path, testDebounce, slog.New(slog.NewTextHandler(&logs, nil)), func(c bool) { checks <- c })
			must(t, err)
			defer fw.close()

			tt.change(t, path, cm)
			if tt.changed {
				select {
				case <-fw.changed:
				case <-time.After(waitFor):
					t.Fatalf("no change seen; logs:\n%s", logs.String())
				}
				return
			}
			select {
			case c := <-checks:
				if c {
					t.Fatal("a change seen, with the same content")
				}
			case <-time.After(waitFor):
				t.Fatal("the file was not read after the event")
			}
			select {
			case <-fw.changed:
				t.Fatal("a change seen, with the same content")
			default:
			}
		})
	}
}

// TestFileWatchKeepsWatchingAfterAnUnreadableFile: a file removed is waited for; the first
// content after it is a change (it may differ from what was loaded), and later ones too.
func TestFileWatchKeepsWatchingAfterAnUnreadableFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gateway.yaml")
	write(t, path, "a: 1")
	checks := make(chan bool, 100)
	var logs bytes.Buffer
	fw, err := startWatch(path, testDebounce, slog.New(slog.NewJSONHandler(&logs, nil)), func(c bool) { checks <- c })
	must(t, err)
	defer fw.close()
	must(t, os.Remove(path))
	select {
	case c := <-checks:
		if c {
			t.Fatal("a removed file reported as a change")
		}
	case <-time.After(waitFor):
		t.Fatal("no check after the removal")
	}
	if !bytes.Contains(logs.Bytes(), []byte("config file unreadable")) {
		t.Errorf("no log line for the removed file:\n%s", logs.String())
	}
	for i, content := range []string{"a: 2", "a: 3"} {
		write(t, path, content)
		select {
		case <-fw.changed:
		case <-time.After(waitFor):
			t.Fatalf("change %d not seen", i+1)
		}
	}
}

func TestWatchThatCannotStartLeavesSIGHUP(t *testing.T) {
	var logs bytes.Buffer
	l := Loop{Watch: true, Path: filepath.Join(t.TempDir(), "no-such-folder", "gateway.yaml"), Logger: slog.New(slog.NewJSONHandler(&logs, nil))}
	changed, stop := l.watch()
	defer stop()
	if changed != nil {
		t.Error("a channel from a watch that could not start")
	}
	if !bytes.Contains(logs.Bytes(), []byte("config file watch could not start; SIGHUP still reloads")) {
		t.Errorf("no log line:\n%s", logs.String())
	}
	for _, l := range []Loop{{Watch: false, Path: "x.yaml"}, {Watch: true, Path: ""}} {
		if changed, stop := l.watch(); changed != nil {
			stop()
			t.Errorf("watch with Watch=%v Path=%q started", l.Watch, l.Path)
		}
	}
}
