// Package testclock is a clock that tests move by hand, safe for concurrent readers.
package testclock

import (
	"sync"
	"time"
)

// Clock starts at a fixed instant and moves only when Advance is called.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a Clock at 2027-01-15 08:00:00 UTC (Unix 1.8e9).
func New() *Clock { return &Clock{now: time.Unix(1_800_000_000, 0)} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}
