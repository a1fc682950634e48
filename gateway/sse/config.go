package sse

import (
	"fmt"
	"time"
)

// DefaultHeartbeat is how long an event stream may stay silent before the stage writes a
// ": keep-alive" comment, when Config.Heartbeat is 0: below the 30-60s idle timeouts of
// common proxies and load balancers.
const DefaultHeartbeat = 15 * time.Second

// Config is the `sse` section of the gateway's YAML. The zero value means the defaults.
// Reloadable.
type Config struct {
	// Heartbeat is the silence after which an event stream gets a ": keep-alive" comment
	// (a stream idle for a whole interval gets one per interval). Default: 0, meaning
	// DefaultHeartbeat (15s). Negative: no heartbeats.
	Heartbeat time.Duration `yaml:"heartbeat" json:"heartbeat"`
}

// Validate accepts every value; it exists for the configuration's uniform checks.
func (c Config) Validate() error {
	if c.Heartbeat > 0 && c.Heartbeat < 100*time.Millisecond {
		return fmt.Errorf("heartbeat: %s is below 100ms", c.Heartbeat)
	}
	return nil
}

func (c Config) interval() time.Duration {
	if c.Heartbeat == 0 {
		return DefaultHeartbeat
	}
	return c.Heartbeat
}

// Ticker is a source of heartbeat ticks (time.Ticker's shape); tests tick by hand.
type Ticker interface {
	// C delivers the ticks.
	C() <-chan time.Time
	// Stop ends the ticks.
	Stop()
}

// Options carries what the process provides. Zero values are replaced by defaults.
type Options struct {
	// NewTicker starts a ticker of the given period. Default: time.NewTicker.
	NewTicker func(time.Duration) Ticker
}

type timeTicker struct{ *time.Ticker }

func (t timeTicker) C() <-chan time.Time { return t.Ticker.C }

func newTimeTicker(d time.Duration) Ticker { return timeTicker{time.NewTicker(d)} }
