package streamlimit

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/gateway/clientip"
)

// DefaultMaxPerCaller is how many server streams one caller may hold open at once, per
// gateway replica, when Config.MaxPerCaller is 0 (API.md: "at most 10 open streams at once").
const DefaultMaxPerCaller = 10

// RetryAfter is what a refused caller is told to wait (Retry-After, RetryInfo): a stream slot
// frees up when one of its streams ends, which the gateway cannot predict.
const RetryAfter = time.Second

// Config is the `streams` section of the gateway's YAML. The zero value means the defaults:
// at most DefaultMaxPerCaller (10) open streams per caller. Reloadable.
type Config struct {
	// MaxPerCaller is how many server streams one caller may hold open at once through one
	// gateway replica; one more is refused with 429. Default: 0, meaning DefaultMaxPerCaller
	// (10). Negative: no cap (the stage passes every request untouched).
	MaxPerCaller int `yaml:"max_per_caller" json:"max_per_caller"`
}

// max returns the cap with the default applied; negative means none.
func (c Config) max() int {
	if c.MaxPerCaller == 0 {
		return DefaultMaxPerCaller
	}
	return c.MaxPerCaller
}

// Options carries what the process provides. Zero values are replaced by defaults.
type Options struct {
	// Registerer for metrics. Default: none registered.
	Registerer prometheus.Registerer
	// Resolver finds the client address of anonymous callers. Default: one that trusts no
	// proxy.
	Resolver *clientip.Resolver
	// Counts are the open streams of the previous configuration's stage (Limiter.Counts), so
	// that a reload keeps them: streams admitted before it still count, and their end still
	// frees their place. Default: new, empty counts.
	Counts *Counts
}
