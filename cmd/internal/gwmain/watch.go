package gwmain

import (
	"crypto/sha256"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// DefaultWatchDebounce is how long the file watch waits after the last change it saw in the
// file's folder before it reads the file: a burst of writes (an editor's, kubelet's symlink
// swap) is read once.
const DefaultWatchDebounce = 200 * time.Millisecond

// fileWatch tells when the content of a file changed. It watches the file's folder, not the
// file: an editor that writes a new file and renames it over the old one, a file removed then
// made again, and a Kubernetes ConfigMap volume (the file is a symlink through "..data", and
// an update points "..data" at a new folder with one rename) all show as events in the
// folder, after which the file is read through its symlinks and its SHA-256 compared with the
// last one seen. When the file is a symlink into another folder, that folder is watched too.
// The first content is the one read when the watch starts (in Loop.Serve, right after the
// configuration was loaded): a change in between, a matter of milliseconds, waits for the next
// one or SIGHUP. A writer that truncates then writes (not a rename) is read once its writes
// stop for the debounce; were it read half-written, the reload is refused and the rest of the
// writes reloads again.
type fileWatch struct {
	path     string
	debounce time.Duration
	logger   *slog.Logger
	w        *fsnotify.Watcher
	dir      string // the file's folder
	target   string // the folder of the file the path resolves to, when another; "" if none
	last     [sha256.Size]byte
	haveLast bool // last holds the hash of a content read
	changed  chan struct{}
	stop     chan struct{}
	done     sync.WaitGroup
	// checked, when set (by tests), is called after each read with whether it was a change.
	checked func(changed bool)
}

// startWatch watches path; its changed channel receives (at most one pending value) when the
// file's content differs from the last content seen, the first being the content at start.
func startWatch(path string, debounce time.Duration, logger *slog.Logger, checked func(bool)) (*fileWatch, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	fw := &fileWatch{path: abs, debounce: debounce, logger: logger, w: w, dir: filepath.Dir(abs),
		changed: make(chan struct{}, 1), stop: make(chan struct{}), checked: checked}
	if err := w.Add(fw.dir); err != nil {
		_ = w.Close()
		return nil, err
	}
	fw.followTarget()
	if data, err := os.ReadFile(fw.path); err == nil {
		fw.last, fw.haveLast = sha256.Sum256(data), true
	}
	fw.done.Add(1)
	go fw.run()
	return fw, nil
}

// close stops the watch and waits for its goroutine.
func (fw *fileWatch) close() {
	close(fw.stop)
	fw.done.Wait()
	_ = fw.w.Close()
}

// run reads the file debounce after the last event of a burst.
func (fw *fileWatch) run() {
	defer fw.done.Done()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-fw.stop:
			return
		case _, ok := <-fw.w.Events:
			if !ok {
				return
			}
			timer.Reset(fw.debounce)
		case err, ok := <-fw.w.Errors:
			if !ok {
				return
			}
			fw.logger.Warn("config file watch", slog.String("config", fw.path), slog.Any("error", err))
			timer.Reset(fw.debounce) // events may have been lost (queue overflow): look again
		case <-timer.C:
			fw.check()
		}
	}
}

// check reads the file and reports a change of its content.
func (fw *fileWatch) check() {
	fw.followTarget()
	data, err := os.ReadFile(fw.path)
	if err != nil { // removed, or between a remove and a create: wait for the next event
		fw.logger.Warn("config file unreadable; the watch waits for it", slog.String("config", fw.path), slog.Any("error", err))
		if fw.checked != nil {
			fw.checked(false)
		}
		return
	}
	sum := sha256.Sum256(data)
	isNew := !fw.haveLast || sum != fw.last
	fw.last, fw.haveLast = sum, true
	if isNew {
		select {
		case fw.changed <- struct{}{}:
		default: // one is pending already
		}
	}
	if fw.checked != nil {
		fw.checked(isNew)
	}
}

// followTarget watches the folder the path's symlinks lead to when it is not the path's own
// (a symlink to a file elsewhere); a ConfigMap's "..2026_..." folder is inside the watched one
// and is not added.
func (fw *fileWatch) followTarget() {
	real, err := filepath.EvalSymlinks(fw.path)
	if err != nil {
		return
	}
	dir := filepath.Dir(real)
	if rel, err := filepath.Rel(fw.dir, dir); err == nil && filepath.Dir(rel) == "." && rel != ".." {
		dir = "" // the path's folder or one directly inside it (ConfigMap): watched already
	}
	if dir == fw.target {
		return
	}
	if fw.target != "" {
		_ = fw.w.Remove(fw.target) // gone already, perhaps
	}
	fw.target = ""
	if dir != "" && fw.w.Add(dir) == nil {
		fw.target = dir
	}
}

// watch starts the file watch when Watch is set and there is a file: changed receives when
// the file's content changed, and stop ends the watch. A watch that cannot start is logged and
// leaves SIGHUP only (changed is nil then).
func (l Loop) watch() (changed <-chan struct{}, stop func()) {
	if !l.Watch || l.Path == "" {
		return nil, func() {}
	}
	debounce := l.WatchDebounce
	if debounce <= 0 {
		debounce = DefaultWatchDebounce
	}
	fw, err := startWatch(l.Path, debounce, l.Logger, l.watchChecked)
	if err != nil {
		l.Logger.Error("config file watch could not start; SIGHUP still reloads", slog.String("config", l.Path), slog.Any("error", err))
		return nil, func() {}
	}
	l.Logger.Info("config file watched", slog.String("config", l.Path), slog.Duration("debounce", debounce))
	return fw.changed, fw.close
}
