package tlsfiles

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
)

// source holds the material parsed from a set of files and reloads it when one of them
// changed. T is what parse builds from the files' contents, in the order of paths.
type source[T any] struct {
	what  string // "server certificate", for the log
	paths []string
	parse func(data [][]byte) (*T, error)
	log   *slog.Logger

	mu      sync.Mutex // one reload at a time; handshakes that find nothing changed wait only for the stats
	seen    []os.FileInfo
	lastErr string // the last failure logged, so that a file staying broken is logged once
	cur     atomic.Pointer[T]
	loads   atomic.Int64 // material swapped in, the first load included (tests)
}

// newSource loads the files once: an error here is the caller's (the process does not start
// with files it cannot use).
func newSource[T any](what string, paths []string, log *slog.Logger, parse func([][]byte) (*T, error)) (*source[T], error) {
	if log == nil {
		log = slog.Default()
	}
	s := &source[T]{what: what, paths: paths, parse: parse, log: log}
	if _, err := s.reload(); err != nil {
		return nil, err
	}
	return s, nil
}

// current returns the material to use for a new handshake: reloaded first when a file changed
// since the last look, the last good one when the files do not load.
func (s *source[T]) current() *T {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed() {
		if _, err := s.reload(); err != nil {
			if msg := err.Error(); msg != s.lastErr {
				s.lastErr = msg
				s.log.Warn("TLS files changed but do not load; keeping the previous ones", "what", s.what, "err", err)
			}
		}
	}
	return s.cur.Load()
}

// changed reports whether any file differs from what the last reload saw (or could not be
// seen then).
func (s *source[T]) changed() bool {
	for i, p := range s.paths {
		fi, err := os.Stat(p)
		if err != nil || s.seen[i] == nil || !sameFile(s.seen[i], fi) {
			return true
		}
	}
	return false
}

func sameFile(a, b os.FileInfo) bool {
	return os.SameFile(a, b) && a.Size() == b.Size() && a.ModTime().Equal(b.ModTime())
}

// reload stats and reads every file, parses them, and swaps the result in. The stats come
// first: a file replaced between its stat and its read is seen as changed at the next look.
func (s *source[T]) reload() (*T, error) {
	seen := make([]os.FileInfo, len(s.paths))
	data := make([][]byte, len(s.paths))
	var errs []error
	for i, p := range s.paths {
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		seen[i] = fi
		if data[i], err = os.ReadFile(p); err != nil {
			errs = append(errs, err)
		}
	}
	s.seen = seen
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", s.what, err)
	}
	m, err := s.parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.what, err)
	}
	s.cur.Store(m)
	s.lastErr = ""
	if s.loads.Add(1) > 1 {
		s.log.Info("TLS files reloaded", "what", s.what, "files", s.paths)
	}
	return m, nil
}
