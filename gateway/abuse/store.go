package abuse

import (
	"context"
	"errors"
	"net/netip"
	"time"
)

// Store counts failed authentications per address and keeps blocks. Memory and Redis implement
// it. Times are the detector's clock; an error means the store could not answer (the detector
// then fails open).
type Store interface {
	// Fail records one failed authentication of addr at now. It returns addr's block (Until
	// after now) when addr is blocked, whether this failure created that block, and otherwise
	// the failures counted within lim.Window (Block.Failures, Until zero). A failure of an
	// address already blocked is not counted.
	Fail(ctx context.Context, addr netip.Addr, now time.Time, lim Limits) (b Block, created bool, err error)
	// Blocked returns addr's block when it is blocked at now.
	Blocked(ctx context.Context, addr netip.Addr, now time.Time) (b Block, blocked bool, err error)
	// List returns the blocks in force at now, in no particular order.
	List(ctx context.Context, now time.Time) ([]Block, error)
	// Lift ends addr's block and forgets its failures; lifted is false when it was not blocked.
	Lift(ctx context.Context, addr netip.Addr, now time.Time) (lifted bool, err error)
}

// Block is one blocked address, as the operator's list shows it.
type Block struct {
	// Addr is the client address.
	Addr netip.Addr `json:"address"`
	// Until is when the block ends.
	Until time.Time `json:"until"`
	// Failures is how many failed authentications within the window made the block.
	Failures int `json:"failures"`
}

// ErrNotBlocked is returned by Detector.Lift for an address that is not blocked.
var ErrNotBlocked = errors.New("address is not blocked")
