package streamlimit

import (
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/acme/shopgate/gateway/clientip"
	"github.com/acme/shopgate/gateway/httperror"
	"github.com/acme/shopgate/gateway/identity"
	"github.com/acme/shopgate/gateway/metrics"
	"github.com/acme/shopgate/gateway/policy"
)

// Limiter is the stream-limit stage of one configuration. Its Counts outlive it across
// reloads (Options.Counts).
type Limiter struct {
	max      int // < 0: no cap
	counts   *Counts
	resolver *clientip.Resolver
	refused  *prometheus.CounterVec
	open     *prometheus.GaugeVec
}

// Counts is how many streams each caller holds open, in this process. It is safe for
// concurrent use; an entry exists only while its caller holds a stream.
type Counts struct {
	mu   sync.Mutex
	open map[string]int
}

// NewCounts returns empty counts.
func NewCounts() *Counts { return &Counts{open: map[string]int{}} }

// acquire takes one of key's max places, reporting whether there was one.
func (c *Counts) acquire(key string, max int) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.open[key]
	if n >= max {
		return false
	}
	c.open[key] = n + 1
	return true
}

// release gives back a place taken by acquire.
func (c *Counts) release(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.open[key]; n > 1 {
		c.open[key] = n - 1
	} else {
		delete(c.open, key)
	}
}

// Open returns how many streams key holds open (Key names a caller).
func (c *Counts) Open(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.open[key]
}

// Callers returns how many callers hold at least one stream.
func (c *Counts) Callers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.open)
}

// New builds the stage. cfg needs no validation: every value means something (Config).
func New(cfg Config, opts Options) (*Limiter, error) {
	if opts.Resolver == nil {
		r, err := clientip.New(clientip.Config{})
		if err != nil {
			return nil, fmt.Errorf("creating the stream limit: %w", err)
		}
		opts.Resolver = r
	}
	if opts.Counts == nil {
		opts.Counts = NewCounts()
	}
	l := &Limiter{
		max:      cfg.max(),
		counts:   opts.Counts,
		resolver: opts.Resolver,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gateway_streams_refused_total",
			Help: "Server streams refused because their caller held streams.max_per_caller open already, by RPC.",
		}, []string{"rpc"}),
		open: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gateway_streams_open",
			Help: "Server streams open through the stream limit, by RPC.",
		}, []string{"rpc"}),
	}
	if opts.Registerer != nil {
		var err error
		if l.refused, err = metrics.RegisterOrReuse(opts.Registerer, l.refused); err != nil {
			return nil, fmt.Errorf("creating the stream limit: %w", err)
		}
		if l.open, err = metrics.RegisterOrReuse(opts.Registerer, l.open); err != nil {
			return nil, fmt.Errorf("creating the stream limit: %w", err)
		}
	}
	return l, nil
}

// Counts returns the open streams, to hand to the next configuration's stage on a reload
// (Options.Counts).
func (l *Limiter) Counts() *Counts { return l.counts }

// statusTooMany is what a refused caller gets: 429 with a RetryInfo of RetryAfter.
var statusTooMany = httperror.WithDetails(status.New(codes.ResourceExhausted, "too many open streams"),
	&errdetails.RetryInfo{RetryDelay: durationpb.New(RetryAfter)})

var retryAfterHeader = []string{strconv.Itoa(int(RetryAfter.Seconds()))}

// Middleware wraps next with the stage. A request whose route is not server-streaming, or with
// no cap configured, passes untouched.
func (l *Limiter) Middleware(next http.Handler) http.Handler {
	if l.max < 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rt := policy.FromContext(r.Context())
		if rt == nil || !rt.ServerStreaming {
			next.ServeHTTP(w, r)
			return
		}
		id, _ := identity.FromContext(r.Context())
		var addr netip.Addr
		if id.Anonymous() {
			addr = l.resolver.ClientIP(r)
		}
		key := Key(id, addr)
		if !l.counts.acquire(key, l.max) {
			l.refused.WithLabelValues(rt.RPC).Inc()
			w.Header()["Retry-After"] = retryAfterHeader
			httperror.Refuse(w, r, statusTooMany)
			return
		}
		open := l.open.WithLabelValues(rt.RPC)
		open.Inc()
		defer func() {
			open.Dec()
			l.counts.release(key)
		}()
		next.ServeHTTP(w, r)
	})
}

// Key names a caller for the cap: "sub:<subject>" for a caller with a token, "key:<subject>"
// for an API key's identity, "ip:<addr>" for an anonymous caller ("ip:unknown" without an
// address). It is the rate limiter's caller key without the RPC: the cap is per caller,
// whatever it streams.
func Key(id identity.Identity, addr netip.Addr) string {
	switch {
	case !id.Anonymous() && id.Method == identity.MethodAPIKey:
		return "key:" + id.Subject
	case !id.Anonymous():
		return "sub:" + id.Subject
	case addr == netip.Addr{}:
		return "ip:unknown"
	}
	return "ip:" + addr.String()
}
