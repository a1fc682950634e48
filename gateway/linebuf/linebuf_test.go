package linebuf_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/acme/shopgate/gateway/linebuf"
)

// sink records every Write it gets, and can be stalled.
type sink struct {
	mu      sync.Mutex
	batches []string
	gate    chan struct{} // when non-nil, each Write waits for a receive from it
}

func (s *sink) Write(p []byte) (int, error) {
	if s.gate != nil {
		<-s.gate
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.batches = append(s.batches, string(p))
	return len(p), nil
}

func (s *sink) got() (batches int, all string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.batches), strings.Join(s.batches, "")
}

func lines(from, to int) string {
	var b strings.Builder
	for i := from; i < to; i++ {
		fmt.Fprintf(&b, "line %03d\n", i) // 9 bytes each
	}
	return b.String()
}

func write(t *testing.T, w *linebuf.Writer, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if n, err := fmt.Fprintf(w, "line %03d\n", i); n != 9 || err != nil {
			t.Fatalf("Write = %d, %v; want 9, nil", n, err)
		}
	}
}

// TestBatches: lines reach the sink in order, a batch per FlushInterval, or sooner when
// FlushSize bytes wait; nothing is written while no line is waiting.
func TestBatches(t *testing.T) {
	tests := []struct {
		name        string
		opts        linebuf.Options
		n           int
		wait        time.Duration // after the writes
		wantBatches int
	}{
		{name: "held until the interval", opts: linebuf.Options{FlushInterval: time.Second}, n: 10, wait: 999 * time.Millisecond, wantBatches: 0},
		{name: "one batch at the interval", opts: linebuf.Options{FlushInterval: time.Second}, n: 10, wait: time.Second, wantBatches: 1},
		{name: "FlushSize writes at once", opts: linebuf.Options{FlushInterval: time.Hour, FlushSize: 90}, n: 10, wait: 0, wantBatches: 1},
		{name: "default interval", n: 3, wait: linebuf.DefaultFlushInterval, wantBatches: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := &sink{}
				w := linebuf.New(s, tt.opts)
				defer w.Close()
				write(t, w, 0, tt.n)
				time.Sleep(tt.wait) // fake time: the bubble's clock
				synctest.Wait()
				batches, all := s.got()
				if batches != tt.wantBatches {
					t.Fatalf("%d batches after %v, want %d", batches, tt.wait, tt.wantBatches)
				}
				if batches > 0 && all != lines(0, tt.n) {
					t.Fatalf("sink got %q, want %q", all, lines(0, tt.n))
				}
				time.Sleep(time.Hour) // idle: nothing more is written
				synctest.Wait()
				if b, _ := s.got(); b != tt.wantBatches && tt.wantBatches > 0 {
					t.Fatalf("%d batches while idle, want %d", b, tt.wantBatches)
				}
			})
		})
	}
}

// TestBurstAfterBurst: each FlushSize burst is written at once, not only the first.
func TestBurstAfterBurst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{}
		w := linebuf.New(s, linebuf.Options{FlushInterval: time.Hour, FlushSize: 90})
		defer w.Close()
		for burst := range 3 {
			write(t, w, burst*10, burst*10+10)
			synctest.Wait()
			if batches, all := s.got(); batches != burst+1 || all != lines(0, burst*10+10) {
				t.Fatalf("after burst %d: %d batches, %q", burst, batches, all)
			}
		}
	})
}

// TestStalledSinkDropsNotBlocks: while the sink is stuck, Write still returns at once; what does
// not fit in MaxBuffered is dropped and counted; once the sink moves again, the kept lines
// arrive in order and later lines flow.
func TestStalledSinkDropsNotBlocks(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{gate: make(chan struct{})}
		w := linebuf.New(s, linebuf.Options{FlushInterval: 10 * time.Millisecond, MaxBuffered: 90})
		write(t, w, 0, 4)
		time.Sleep(10 * time.Millisecond) // the first batch (4 lines) goes to the sink and sticks
		synctest.Wait()
		write(t, w, 4, 20) // 36 bytes in flight + 54 pending fit: lines 4..9; 10..19 dropped
		if got := w.Dropped(); got != 10 {
			t.Fatalf("Dropped = %d, want 10", got)
		}
		s.gate <- struct{}{} // the first batch completes
		synctest.Wait()
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
		s.gate <- struct{}{} // the second batch (lines 4..9)
		synctest.Wait()
		close(s.gate) // the sink is healthy again
		write(t, w, 20, 22)
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		_, all := s.got()
		if want := lines(0, 10) + lines(20, 22); all != want {
			t.Fatalf("sink got %q, want %q", all, want)
		}
	})
}

// TestCloseFlushes: Close writes what is buffered at once, and later writes are dropped.
func TestCloseFlushes(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{}
		w := linebuf.New(s, linebuf.Options{FlushInterval: time.Hour})
		write(t, w, 0, 3)
		start := time.Now()
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited != 0 {
			t.Errorf("Close waited %v for the interval", waited)
		}
		write(t, w, 3, 4)
		if err := w.Close(); err != nil { // twice is fine
			t.Fatal(err)
		}
		if _, all := s.got(); all != lines(0, 3) {
			t.Fatalf("sink got %q, want %q", all, lines(0, 3))
		}
		if got := w.Dropped(); got != 1 {
			t.Fatalf("Dropped = %d, want 1 (the write after Close)", got)
		}
	})
}

// TestShutdownGivesUpOnAStuckSink: a sink that never returns does not hold Shutdown past its
// context; the goroutine ends once the sink returns.
func TestShutdownGivesUpOnAStuckSink(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := &sink{gate: make(chan struct{})}
		w := linebuf.New(s, linebuf.Options{FlushInterval: time.Hour})
		write(t, w, 0, 2)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		start := time.Now()
		if err := w.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown = %v, want DeadlineExceeded", err)
		}
		if waited := time.Since(start); waited != time.Second {
			t.Fatalf("Shutdown waited %v, want 1s", waited)
		}
		close(s.gate) // the sink moves: the last batch lands and the goroutine ends
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		if _, all := s.got(); all != lines(0, 2) {
			t.Fatalf("sink got %q, want %q", all, lines(0, 2))
		}
	})
}

// TestConcurrentWriters: lines written from many goroutines each arrive once and whole.
func TestConcurrentWriters(t *testing.T) {
	s := &sink{}
	w := linebuf.New(s, linebuf.Options{FlushInterval: time.Millisecond, FlushSize: 256})
	const writers, each = 8, 500
	var wg sync.WaitGroup
	for g := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				fmt.Fprintf(w, "w%d-%04d\n", g, i)
			}
		}()
	}
	wg.Wait()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	_, all := s.got()
	seen := make(map[string]bool)
	next := make([]int, writers) // each writer's lines arrive in its order
	for _, l := range strings.Split(strings.TrimSuffix(all, "\n"), "\n") {
		var g, i int
		if _, err := fmt.Sscanf(l, "w%d-%04d", &g, &i); err != nil || seen[l] {
			t.Fatalf("line %q: garbled or repeated (%v)", l, err)
		}
		seen[l] = true
		if i != next[g] {
			t.Fatalf("writer %d: line %d after %d", g, i, next[g]-1)
		}
		next[g]++
	}
	if len(seen) != writers*each || w.Dropped() != 0 {
		t.Fatalf("%d lines arrived, %d dropped; want %d, 0", len(seen), w.Dropped(), writers*each)
	}
	if !bytes.HasSuffix([]byte(all), []byte("\n")) {
		t.Fatal("the last line is cut")
	}
}
