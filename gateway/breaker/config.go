package breaker

import (
	"errors"
	"fmt"
	"time"
)

// Defaults of Config.
const (
	// DefaultConsecutiveFailures trips a breaker after this many failures in a row.
	DefaultConsecutiveFailures = 5
	// DefaultMinRequests is the least number of requests in Interval before FailureRatio applies.
	DefaultMinRequests = 20
	// DefaultInterval is the closed-state window after which the counts are cleared.
	DefaultInterval = 60 * time.Second
	// DefaultOpenTimeout is how long a breaker stays open before it lets probes through.
	DefaultOpenTimeout = 10 * time.Second
	// DefaultHalfOpenMaxRequests is how many probes a half-open breaker lets through; that many
	// successes close it, one failure opens it again.
	DefaultHalfOpenMaxRequests = 1
)

// The scopes of Config.Scope.
const (
	// ScopeRPC keeps one breaker per RPC (the default): a dependency's fault that fails one RPC
	// (CreateOrder waiting on a frozen inventory) does not open the circuit of the service's
	// other RPCs (GetOrder).
	ScopeRPC = "rpc"
	// ScopeService keeps one breaker per upstream service: any RPC's failures open it for all.
	ScopeService = "service"
)

// Config is the `breaker` section of the gateway's YAML. The zero value means "the defaults":
// one breaker per RPC that opens after 5 consecutive failures, stays open 10s and then lets one
// probe through.
type Config struct {
	// Scope is "rpc" (one breaker per RPC) or "service" (one per upstream service). Either
	// way, calls to an upstream's named pool (gateway/traffic) have breakers of their own,
	// named "<rpc or service>@<pool>". Default: "rpc".
	Scope string `yaml:"scope" json:"scope"`
	// ConsecutiveFailures trips the breaker after that many failures in a row. Default: 5.
	ConsecutiveFailures uint32 `yaml:"consecutive_failures" json:"consecutive_failures"`
	// FailureRatio, when above 0, also trips the breaker when at least that share of the
	// requests in Interval failed, once there were MinRequests of them. Default: 0 (off).
	FailureRatio float64 `yaml:"failure_ratio" json:"failure_ratio"`
	// MinRequests is the least number of requests in Interval before FailureRatio applies.
	// Default: 20.
	MinRequests uint32 `yaml:"min_requests" json:"min_requests"`
	// Interval is the closed-state window after which the counts are cleared. Default: 60s.
	Interval time.Duration `yaml:"interval" json:"interval"`
	// OpenTimeout is how long a breaker stays open before it turns half-open. Default: 10s.
	OpenTimeout time.Duration `yaml:"open_timeout" json:"open_timeout"`
	// HalfOpenMaxRequests is how many probes a half-open breaker lets through. Default: 1.
	HalfOpenMaxRequests uint32 `yaml:"half_open_max_requests" json:"half_open_max_requests"`
}

// withDefaults returns cfg with every zero value replaced by its default, or an error.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	switch cfg.Scope {
	case "":
		cfg.Scope = ScopeRPC
	case ScopeRPC, ScopeService:
	default:
		errs = append(errs, fmt.Errorf("scope %q is neither %q nor %q", cfg.Scope, ScopeRPC, ScopeService))
	}
	if cfg.ConsecutiveFailures == 0 {
		cfg.ConsecutiveFailures = DefaultConsecutiveFailures
	}
	if cfg.FailureRatio < 0 || cfg.FailureRatio > 1 {
		errs = append(errs, fmt.Errorf("failure_ratio %v is not within [0, 1]", cfg.FailureRatio))
	}
	if cfg.MinRequests == 0 {
		cfg.MinRequests = DefaultMinRequests
	}
	if cfg.Interval == 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.OpenTimeout == 0 {
		cfg.OpenTimeout = DefaultOpenTimeout
	}
	if cfg.HalfOpenMaxRequests == 0 {
		cfg.HalfOpenMaxRequests = DefaultHalfOpenMaxRequests
	}
	if cfg.Interval < 0 || cfg.OpenTimeout < 0 {
		errs = append(errs, errors.New("interval and open_timeout must not be negative"))
	}
	return cfg, errors.Join(errs...)
}
