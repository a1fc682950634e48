package order

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"time"

	orderv1 "github.com/acme/shopgate/gen/shop/order/v1"
	"github.com/prometheus/client_golang/prometheus"
)

// PendingStats are the orders not yet settled: how many, and when the oldest was created.
type PendingStats struct {
	Count int64
	// Oldest is the oldest pending order's creation time; zero when there is none.
	Oldest time.Time
}

// Pending counts the PENDING orders (one query on a partial index of them).
func (s *SQLStore) Pending(ctx context.Context) (PendingStats, error) {
	var n int64
	var oldest *int64
	err := s.db.Reader().QueryRowContext(ctx, `SELECT COUNT(*), MIN(create_time) FROM orders WHERE status = ?`,
		int32(orderv1.OrderStatus_ORDER_STATUS_PENDING)).Scan(&n, &oldest)
	if err != nil {
		return PendingStats{}, fmt.Errorf("counting pending orders: %w", err)
	}
	st := PendingStats{Count: n}
	if oldest != nil {
		st.Oldest = time.Unix(0, *oldest)
	}
	return st, nil
}

// PendingSource is what PendingCollector reads; SQLStore implements it.
type PendingSource interface {
	Pending(ctx context.Context) (PendingStats, error)
}

// pendingTimeout bounds the query of one scrape.
const pendingTimeout = 2 * time.Second

// PendingCollector returns the collector of orders_pending (how many orders are PENDING) and
// orders_pending_oldest_age_seconds (0 when none), read from src at each scrape (bounded by
// 2s). When the query fails, both read NaN and the failure is logged (log nil: slog.Default());
// the rest of the scrape is served. now nil: time.Now.
func PendingCollector(src PendingSource, log *slog.Logger, now func() time.Time) prometheus.Collector {
	if log == nil {
		log = slog.Default()
	}
	if now == nil {
		now = time.Now
	}
	return &pendingCollector{src: src, log: log, now: now,
		count: prometheus.NewDesc("orders_pending", "Orders in PENDING: accepted, the saga not yet settled.", nil, nil),
		age:   prometheus.NewDesc("orders_pending_oldest_age_seconds", "Age of the oldest PENDING order (0 when none).", nil, nil),
	}
}

type pendingCollector struct {
	src        PendingSource
	log        *slog.Logger
	now        func() time.Time
	count, age *prometheus.Desc
}

func (c *pendingCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.count; ch <- c.age }

func (c *pendingCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), pendingTimeout)
	defer cancel()
	st, err := c.src.Pending(ctx)
	count, age := float64(st.Count), 0.0
	switch {
	case err != nil:
		c.log.Error("orders_pending", slog.Any("error", err))
		count, age = math.NaN(), math.NaN()
	case !st.Oldest.IsZero():
		age = max(0, c.now().Sub(st.Oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.count, prometheus.GaugeValue, count)
	ch <- prometheus.MustNewConstMetric(c.age, prometheus.GaugeValue, age)
}
