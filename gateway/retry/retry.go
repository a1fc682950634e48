package retry

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/acme/shopgate/gateway/policy"
	"github.com/acme/shopgate/gateway/upstream"
)

// Defaults of Config.
const (
	// DefaultMaxAttempts is the number of attempts of an idempotent call, the first included.
	DefaultMaxAttempts = 3
	// DefaultInitialBackoff bounds the (random) wait before the first retry.
	DefaultInitialBackoff = 100 * time.Millisecond
	// DefaultMaxBackoff bounds the wait before any retry.
	DefaultMaxBackoff = time.Second
	// DefaultBackoffMultiplier grows the bound after each retry.
	DefaultBackoffMultiplier = 2.0
	// DefaultMaxTokens is the size of the throttling bucket of each connection.
	DefaultMaxTokens = 10
	// DefaultTokenRatio is what each successful call gives back to the bucket.
	DefaultTokenRatio = 0.1
)

// DefaultRetryableStatusCodes are the codes retried when Config.RetryableStatusCodes is empty.
var DefaultRetryableStatusCodes = []string{"UNAVAILABLE"}

// maxAttemptsLimit is grpc-go's own cap.
const maxAttemptsLimit = 5

// Config is the `retry` section of the gateway's YAML. The zero value means the defaults: 3
// attempts on UNAVAILABLE for idempotent RPCs, backoff 100ms doubling up to 1s, throttling 10
// tokens with ratio 0.1.
type Config struct {
	// MaxAttempts counts the first attempt; 1 turns retries off; at most 5. Default: 3.
	MaxAttempts int `yaml:"max_attempts" json:"max_attempts"`
	// InitialBackoff bounds the wait before the first retry. Default: 100ms.
	InitialBackoff time.Duration `yaml:"initial_backoff" json:"initial_backoff"`
	// MaxBackoff bounds the wait before any retry. Default: 1s.
	MaxBackoff time.Duration `yaml:"max_backoff" json:"max_backoff"`
	// BackoffMultiplier grows the bound after each retry. Default: 2.
	BackoffMultiplier float64 `yaml:"backoff_multiplier" json:"backoff_multiplier"`
	// RetryableStatusCodes are gRPC code names ("UNAVAILABLE"). Default: [UNAVAILABLE].
	RetryableStatusCodes []string `yaml:"retryable_status_codes" json:"retryable_status_codes"`
	// Throttling is the per-connection retry budget.
	Throttling ThrottlingConfig `yaml:"throttling" json:"throttling"`
}

// ThrottlingConfig is grpc's retryThrottling. The zero value means the defaults.
type ThrottlingConfig struct {
	// MaxTokens in (0, 1000]; retries stop while the bucket holds MaxTokens/2 or less.
	// Default: 10.
	MaxTokens int `yaml:"max_tokens" json:"max_tokens"`
	// TokenRatio in (0, 1] is what each success gives back. Default: 0.1.
	TokenRatio float64 `yaml:"token_ratio" json:"token_ratio"`
}

// codeByName maps "UNAVAILABLE" to codes.Unavailable, for validation.
var codeByName = func() map[string]codes.Code {
	m := make(map[string]codes.Code)
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		var b strings.Builder
		for i, r := range c.String() { // "DeadlineExceeded" -> "DEADLINE_EXCEEDED"
			if i > 0 && r >= 'A' && r <= 'Z' {
				b.WriteByte('_')
			}
			b.WriteRune(r)
		}
		m[strings.ToUpper(b.String())] = c
	}
	return m
}()

// withDefaults returns cfg with every zero value replaced by its default, or an error.
func (cfg Config) withDefaults() (Config, error) {
	var errs []error
	if cfg.MaxAttempts == 0 {
		cfg.MaxAttempts = DefaultMaxAttempts
	}
	if cfg.MaxAttempts < 1 || cfg.MaxAttempts > maxAttemptsLimit {
		errs = append(errs, fmt.Errorf("max_attempts %d is not within [1, %d]", cfg.MaxAttempts, maxAttemptsLimit))
	}
	if cfg.InitialBackoff == 0 {
		cfg.InitialBackoff = DefaultInitialBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.InitialBackoff)
	}
	if cfg.InitialBackoff < 0 || cfg.MaxBackoff < cfg.InitialBackoff {
		errs = append(errs, fmt.Errorf("backoff: need 0 < initial_backoff (%v) <= max_backoff (%v)", cfg.InitialBackoff, cfg.MaxBackoff))
	}
	if cfg.BackoffMultiplier == 0 {
		cfg.BackoffMultiplier = DefaultBackoffMultiplier
	}
	if cfg.BackoffMultiplier < 0 {
		errs = append(errs, fmt.Errorf("backoff_multiplier %v is negative", cfg.BackoffMultiplier))
	}
	if len(cfg.RetryableStatusCodes) == 0 {
		cfg.RetryableStatusCodes = DefaultRetryableStatusCodes
	}
	codesOut := make([]string, 0, len(cfg.RetryableStatusCodes))
	for _, name := range cfg.RetryableStatusCodes {
		n := strings.ToUpper(strings.TrimSpace(name))
		if c, ok := codeByName[n]; !ok || c == codes.OK {
			errs = append(errs, fmt.Errorf("retryable_status_codes: unknown code %q", name))
			continue
		}
		codesOut = append(codesOut, n)
	}
	cfg.RetryableStatusCodes = codesOut
	t := &cfg.Throttling
	if t.MaxTokens == 0 {
		t.MaxTokens = DefaultMaxTokens
	}
	if t.TokenRatio == 0 {
		t.TokenRatio = DefaultTokenRatio
	}
	if t.MaxTokens < 0 || t.MaxTokens > 1000 || t.TokenRatio < 0 || t.TokenRatio > 1 {
		errs = append(errs, fmt.Errorf("throttling: need max_tokens in (0, 1000] and token_ratio in (0, 1], got %d and %v", t.MaxTokens, t.TokenRatio))
	}
	return cfg, errors.Join(errs...)
}

// Stage is the retry stage: a validated Config with its defaults applied once, which renders the
// retry part of the upstream connections' service config. grpc-go runs it below the client
// interceptors (see the package doc).
type Stage struct {
	cfg Config
}

// New applies cfg's defaults and validates it, reporting every problem at once.
func New(cfg Config) (*Stage, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("creating retry policies: %w", err)
	}
	return &Stage{cfg: cfg}, nil
}

// MethodConfigs returns one service-config method entry per idempotent RPC of routes (an RPC
// is idempotent when every route bound to it says so), sorted by RPC name. Non-idempotent RPCs
// get no entry: grpc-go then never retries them. With MaxAttempts 1 the list is empty.
func (s *Stage) MethodConfigs(routes []*policy.Route) ([]upstream.MethodConfig, error) {
	if s.cfg.MaxAttempts == 1 {
		return nil, nil
	}
	idempotent := make(map[string]bool) // RPC -> every binding idempotent
	names := make(map[string]upstream.MethodName)
	for _, rt := range routes {
		name, ok := upstream.ParseMethod(rt.RPC)
		if !ok {
			return nil, fmt.Errorf("building retry policies: route %s %s: malformed RPC name %q", rt.HTTPMethod, rt.Path, rt.RPC)
		}
		prev, seen := idempotent[rt.RPC]
		idempotent[rt.RPC] = rt.Policy.Idempotent && (!seen || prev)
		names[rt.RPC] = name
	}
	rpcs := make([]string, 0, len(idempotent))
	for rpc, ok := range idempotent {
		if ok {
			rpcs = append(rpcs, rpc)
		}
	}
	slices.Sort(rpcs)
	cfg := s.cfg
	policyTemplate := upstream.RetryPolicy{
		MaxAttempts:          cfg.MaxAttempts,
		InitialBackoff:       upstream.Duration(cfg.InitialBackoff),
		MaxBackoff:           upstream.Duration(cfg.MaxBackoff),
		BackoffMultiplier:    cfg.BackoffMultiplier,
		RetryableStatusCodes: cfg.RetryableStatusCodes,
	}
	out := make([]upstream.MethodConfig, 0, len(rpcs))
	for _, rpc := range rpcs {
		p := policyTemplate
		out = append(out, upstream.MethodConfig{Name: []upstream.MethodName{names[rpc]}, RetryPolicy: &p})
	}
	return out, nil
}

// Throttling returns the connections' retryThrottling.
func (s *Stage) Throttling() *upstream.RetryThrottling {
	return &upstream.RetryThrottling{MaxTokens: s.cfg.Throttling.MaxTokens, TokenRatio: s.cfg.Throttling.TokenRatio}
}
