package events

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"sync"

	"github.com/acme/shopgate/internal/tlsfiles"
	"go.opentelemetry.io/otel/trace"
)

// RuntimeConfig configures the events side of one service (Start). Its zero value means: an
// embedded broker under DefaultBrokerDir, the relay on, the Config and RelayConfig defaults.
type RuntimeConfig struct {
	// URL is the broker to use: a NATS server or cluster ("nats://127.0.0.1:4222", JetStream)
	// or a Kafka cluster ("kafka://10.0.0.1:9092,10.0.0.2:9092", DialKafka, configured by
	// Broker.Kafka). Default "": a NATS JetStream broker embedded in this process (Embedded, or one started under Dir), which only makes sense
	// when one process runs every service or the others connect to its Listen address.
	URL string
	// Embedded is a broker this process already runs (the single-process stack shares one
	// between its services). Used when URL is empty. Default nil: Start starts one.
	Embedded *Embedded
	// Dir is the data directory of the broker Start embeds. Default DefaultBrokerDir.
	Dir string
	// Listen is the TCP address the broker Start embeds also listens on, so that other
	// processes connect to it. Default "": none.
	Listen string
	// Broker configures the connection, stream and consumer.
	Broker Config
	// TLS are the files of a TLS connection to URL (flags -broker-tls-*), re-read when they
	// change. Default: none (plaintext).
	TLS tlsfiles.ClientFiles
	// Relay configures the outbox relay; its Name defaults to the consumer's name.
	Relay RelayConfig
	// TracerProvider, when set, traces every publish and delivery (producer and consumer
	// spans, context in the message headers): it goes to Relay.TracerProvider and
	// Consumer.TracerProvider. Default nil: tracing off.
	TracerProvider trace.TracerProvider
	// NoRelay leaves the outbox unpublished (tests of a crash between commit and publish).
	// Default false.
	NoRelay bool
}

// RegisterFlags defines the command-line flags of c on fs: -broker-url, -broker-dir,
// -broker-listen, -broker-stream, -broker-subject-prefix, -broker-tls-ca, -broker-tls-cert,
// -broker-tls-key, -broker-tls-server-name, -broker-replicas, -broker-user,
// -broker-password-file, -broker-token-file, -broker-creds, -broker-nkey, -broker-topic,
// -broker-partitions, -broker-replication-factor, -broker-sasl-mechanism, -events-ack-wait,
// -events-max-attempts, -relay and -relay-duplicate-for-testing.
func (c *RuntimeConfig) RegisterFlags(fs *flag.FlagSet) {
	fs.StringVar(&c.URL, "broker-url", c.URL, "event broker: nats://host:port[,...] (NATS JetStream) or kafka://host:port[,...] (Kafka); empty: embed a NATS broker in this process")
	fs.StringVar(&c.Dir, "broker-dir", c.Dir, "data directory of the embedded broker (default "+DefaultBrokerDir+")")
	fs.StringVar(&c.Listen, "broker-listen", c.Listen, "TCP address on which the embedded broker also serves other processes; empty: none")
	fs.StringVar(&c.Broker.Stream, "broker-stream", c.Broker.Stream, "JetStream stream of the events (default SHOP_EVENTS)")
	fs.StringVar(&c.Broker.SubjectPrefix, "broker-subject-prefix", c.Broker.SubjectPrefix, "subject prefix of the events (default "+SubjectPrefix+")")
	fs.DurationVar(&c.Broker.AckWait, "events-ack-wait", c.Broker.AckWait, "how long an unacknowledged event waits before redelivery, e.g. after a crash (default 30s)")
	fs.IntVar(&c.Broker.MaxAttempts, "events-max-attempts", c.Broker.MaxAttempts, "deliveries of a failing event before it is dead-lettered (default 5)")
	fs.BoolFunc("relay", "publish the outbox (default true; -relay=false only for tests)", func(s string) error {
		on, err := strconv.ParseBool(s)
		if err != nil {
			return errors.New("want true or false")
		}
		c.NoRelay = !on
		return nil
	})
	registerTLSFlags(fs, &c.TLS)
	registerAuthFlags(fs, &c.Broker)
	registerKafkaFlags(fs, &c.Broker.Kafka)
	fs.BoolVar(&c.Relay.DuplicateForTesting, "relay-duplicate-for-testing", c.Relay.DuplicateForTesting, "publish every event twice (tests of idempotency only)")
}

// Runtime is the events side of one running service: its broker connection, its outbox relay
// and its consumer. Close stops them.
type Runtime struct {
	broker   Broker
	embedded *Embedded // started by Start, closed by Close
	relay    *Relay
	sub      Subscription
	once     sync.Once
}

// Start connects a service to the broker, starts the relay of the outbox in db and runs the
// service's consumer. Pass Notify to the service (SetNotify) so that each commit wakes the relay.
func Start(ctx context.Context, db *sql.DB, consumer Consumer, cfg RuntimeConfig) (*Runtime, error) {
	rt := &Runtime{}
	var err error
	switch {
	case cfg.URL != "":
		if cfg.Broker.TLS, err = brokerTLS(cfg.TLS, cfg.Broker); err != nil {
			return nil, fmt.Errorf("starting events: %w", err)
		}
		rt.broker, err = dialURL(ctx, cfg.URL, cfg.Broker)
	case cfg.TLS.Enabled():
		return nil, errors.New("starting events: -broker-tls-* apply to -broker-url: an embedded broker is reached in-process, without TLS")
	default:
		e := cfg.Embedded
		if e == nil {
			if cfg.Listen == "" && cfg.Broker.Logger != nil {
				cfg.Broker.Logger.Warn("no broker URL: events go through a broker embedded in this process only; " +
					"services in other processes need -broker-url (or this one -broker-listen)")
			}
			if e, err = StartEmbedded(cfg.Dir, EmbeddedConfig{Listen: cfg.Listen}); err != nil {
				return nil, fmt.Errorf("starting events: %w", err)
			}
			rt.embedded = e
		}
		rt.broker, err = nilIfFailed(e.Connect(ctx, cfg.Broker))
	}
	if err != nil {
		rt.Close()
		return nil, fmt.Errorf("starting events: %w", err)
	}
	if cfg.Relay.Name == "" {
		cfg.Relay.Name = consumer.Name
	}
	if cfg.Relay.TracerProvider == nil {
		cfg.Relay.TracerProvider = cfg.TracerProvider
	}
	if consumer.TracerProvider == nil {
		consumer.TracerProvider = cfg.TracerProvider
	}
	if rt.relay, err = NewRelay(db, rt.broker, cfg.Relay); err != nil {
		rt.Close()
		return nil, fmt.Errorf("starting events: %w", err)
	}
	if !cfg.NoRelay {
		rt.relay.Start()
	}
	if rt.sub, err = Consume(ctx, rt.broker, consumer); err != nil {
		rt.Close()
		return nil, fmt.Errorf("starting events: %w", err)
	}
	return rt, nil
}

// Broker returns the running broker connection (a *JetStream or a *Kafka).
func (rt *Runtime) Broker() Broker { return rt.broker }

// Notify wakes the relay; give it to the service's SetNotify.
func (rt *Runtime) Notify() { rt.relay.Notify() }

// Close stops the consumer (waiting for the event in hand), the relay, the connection and an
// embedded broker Start started, in that order. Idempotent.
func (rt *Runtime) Close() {
	rt.once.Do(func() {
		if rt.sub != nil {
			rt.sub.Stop()
		}
		if rt.relay != nil {
			_ = rt.relay.Close()
		}
		if rt.broker != nil {
			_ = rt.broker.Close()
		}
		if rt.embedded != nil {
			_ = rt.embedded.Close()
		}
	})
}
