package events

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// consumerMetrics counts what the consumers do. Several brokers in one process (cmd/shop) share
// one Registerer: a collector registered already is reused.
type consumerMetrics struct {
	messages   *prometheus.CounterVec // consumer, result: ok, retry, dead_letter
	deadLetter *prometheus.CounterVec // consumer, type
}

func newConsumerMetrics(reg prometheus.Registerer) (*consumerMetrics, error) {
	m := &consumerMetrics{
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_consumer_messages_total",
			Help: "Messages handled by event consumers, by consumer and result (ok, retry, dead_letter).",
		}, []string{"consumer", "result"}),
		deadLetter: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "events_dead_letter_total",
			Help: "Messages moved to the dead-letter subject after their last failed attempt, by consumer and event type.",
		}, []string{"consumer", "type"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.messages, err = register(reg, m.messages); err != nil {
		return nil, err
	}
	if m.deadLetter, err = register(reg, m.deadLetter); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c on reg, or returns the identical collector registered before.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var already prometheus.AlreadyRegisteredError
		if errors.As(err, &already) {
			if existing, ok := already.ExistingCollector.(C); ok {
				return existing, nil
			}
		}
		return c, err
	}
	return c, nil
}
