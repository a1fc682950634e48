package events

import (
	"context"
	"errors"
	"strconv"
	"time"
)

// Dead-letter message headers: where the message came from and why it was given up. Every
// adapter sends them with the dead-letter copy (deadLetterMessage).
const (
	HeaderDeadLetterSubject  = "Shop-Dead-Letter-Subject" // the subject or topic it was read from
	HeaderDeadLetterConsumer = "Shop-Dead-Letter-Consumer"
	HeaderDeadLetterError    = "Shop-Dead-Letter-Error"
	HeaderDeadLetterAttempts = "Shop-Dead-Letter-Attempts"
)

// DeadLetterName is the broker-neutral part of the dead-letter destination of consumer's
// given-up messages: the JetStream subject is <prefix>DeadLetterName(consumer).<type>, the
// Kafka topic <topic>.DeadLetterName(consumer).
func DeadLetterName(consumer string) string { return "deadletter." + consumer }

// delivery is one message an adapter hands to the shared retry and dead-letter policy
// (dispatcher.deliver), with the callbacks that settle it on the adapter's broker.
type delivery struct {
	// msg is the message as the handler sees it, Attempt set (from 1).
	msg Message
	// source is the subject or topic the message was read from (the dead-letter header).
	source string
	// ack settles the message as done (the handler succeeded, or it was dead-lettered).
	ack func() error
	// retry asks for the message again after the given delay (the handler failed).
	retry func(after time.Duration) error
	// term settles a dead-lettered message for good; nil: ack.
	term func() error
	// release hands the message back at once, unsettled: the subscription is stopping.
	release func() error
}

// outcome is what the policy did with a delivery.
type outcome int

const (
	outcomeAcked      outcome = iota // handled: acknowledged
	outcomeRetry                     // failed: redelivery asked after a backoff
	outcomeDeadLetter                // given up: copied to the dead-letter destination, acknowledged
	outcomeReleased                  // stopping: handed back unsettled
)

// dispatcher applies the broker-neutral consumer policy, shared by every adapter: it runs the
// handler under HandlerTimeout, acknowledges on success, redelivers with BackOff on failure,
// and after MaxAttempts (or at once on ErrPermanent) publishes a dead-letter copy through the
// adapter and acknowledges; it logs and counts each outcome. Safe for concurrent use.
type dispatcher struct {
	consumer string
	cfg      Config // MaxAttempts, BackOff, HandlerTimeout, Logger; defaults applied
	metrics  *consumerMetrics
	h        Handler
	ctx      context.Context // cancelled by the subscription's Stop: interrupts the handler
	// deadLetter publishes a dead-letter copy (deadLetterMessage) to the adapter's destination
	// for consumer and the copy's Type.
	deadLetter func(ctx context.Context, dl Message) error
}

// deliver runs the handler on d and settles d by the policy; it returns what it did.
func (p *dispatcher) deliver(d delivery) outcome {
	attempt := max(d.msg.Attempt, 1)
	d.msg.Attempt = attempt
	ctx, cancel := context.WithTimeout(p.ctx, p.cfg.HandlerTimeout)
	err := p.h(ctx, d.msg)
	cancel()
	log := p.cfg.Logger
	switch {
	case err == nil:
		if aerr := d.ack(); aerr != nil {
			log.Warn("acknowledging event", "consumer", p.consumer, "type", d.msg.Type, "err", aerr)
		}
		p.metrics.messages.WithLabelValues(p.consumer, "ok").Inc()
		return outcomeAcked
	case p.ctx.Err() != nil:
		// Stopping: leave the message to another instance, now.
		_ = d.release()
		return outcomeReleased
	case attempt >= p.cfg.MaxAttempts || errors.Is(err, ErrPermanent):
		dctx, dcancel := context.WithTimeout(context.Background(), p.cfg.RequestTimeout)
		derr := p.deadLetter(dctx, deadLetterMessage(p.consumer, d.source, d.msg, err))
		dcancel()
		if derr != nil {
			log.Error("dead-lettering event failed; will retry", "consumer", p.consumer, "type", d.msg.Type, "err", derr)
			_ = d.retry(p.cfg.backoff(attempt))
			return outcomeRetry
		}
		if d.term != nil {
			_ = d.term()
		} else {
			_ = d.ack()
		}
		p.metrics.messages.WithLabelValues(p.consumer, "dead_letter").Inc()
		p.metrics.deadLetter.WithLabelValues(p.consumer, d.msg.Type).Inc()
		log.Error("event moved to dead-letter subject", "consumer", p.consumer, "type", d.msg.Type,
			"event_id", d.msg.ID, "attempts", attempt, "err", err)
		return outcomeDeadLetter
	default:
		_ = d.retry(p.cfg.backoff(attempt))
		p.metrics.messages.WithLabelValues(p.consumer, "retry").Inc()
		log.Warn("event handler failed; will redeliver", "consumer", p.consumer, "type", d.msg.Type,
			"attempt", attempt, "err", err)
		return outcomeRetry
	}
}

// deadLetterMessage is the dead-letter copy of msg, given up by consumer after msg.Attempt
// deliveries read from source because of cause: same type, key and data, its own
// deduplication id, and the HeaderDeadLetter* headers.
func deadLetterMessage(consumer, source string, msg Message, cause error) Message {
	return Message{
		Type: msg.Type,
		ID:   "deadletter:" + consumer + ":" + msg.ID,
		Key:  msg.Key,
		Data: msg.Data,
		Headers: map[string]string{
			HeaderDeadLetterSubject:  source,
			HeaderDeadLetterConsumer: consumer,
			HeaderDeadLetterAttempts: strconv.Itoa(msg.Attempt),
			HeaderDeadLetterError:    cause.Error(),
		},
	}
}
