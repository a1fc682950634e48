package events

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/acme/shopgate/internal/tlsfiles"
)

// Config configures a broker connection: the JetStream one (Dial, (*Embedded).Connect) or the
// Kafka one (DialKafka, which reads Kafka). Name, the retry and dead-letter policy
// (MaxAttempts, BackOff, HandlerTimeout), AckWait (Kafka: the group's session timeout, at least
// 6s), ReconnectWait, RequestTimeout, Logger, TLS, Registerer and MaxAge apply to both; Stream, SubjectPrefix, MaxAckPending, Duplicates and
// Replicas to JetStream only. Its zero value means the defaults.
type Config struct {
	// Name names the connection in the server's monitoring ("orderd"). Default "shopgate".
	Name string
	// Kafka configures the Kafka broker (topic, partitions, replication factor, SASL); ignored
	// by JetStream. Default: KafkaConfig's defaults.
	Kafka KafkaConfig
	// Stream is the JetStream stream holding the events. Default "SHOP_EVENTS".
	Stream string
	// SubjectPrefix starts every subject of the stream; an event's subject is the prefix followed
	// by its type. It must end with a dot. Default SubjectPrefix ("shop.events."). Tests on a
	// shared server use a unique stream and prefix.
	SubjectPrefix string
	// MaxAttempts is how many times a message is delivered to a failing handler before it goes
	// to the dead-letter subject (<prefix>deadletter.<consumer>.<type>). Default 5.
	MaxAttempts int
	// BackOff are the redelivery delays after a handler failure, by attempt; the last one repeats.
	// Default 100ms, 500ms, 2s, 5s.
	BackOff []time.Duration
	// AckWait is how long the broker waits for an acknowledgement before it redelivers (a crashed
	// instance's message goes to another one after it). Default 30s.
	AckWait time.Duration
	// HandlerTimeout bounds one handler call; at most AckWait. Default AckWait.
	HandlerTimeout time.Duration
	// MaxAckPending bounds the messages in flight per consumer, across its instances. Default 1000.
	MaxAckPending int
	// Duplicates is the stream's deduplication window for message ids. Default 10m.
	Duplicates time.Duration
	// MaxAge drops stream messages older than it (Kafka: the retention.ms of the topics it
	// creates). Default 7 days.
	MaxAge time.Duration
	// Replicas is the replication factor of the stream on a NATS cluster; its consumers
	// inherit it. 3 on a cluster of three keeps the events written and delivered while one
	// node is down. Raising it on an existing stream updates the stream. Default 1.
	Replicas int
	// User authenticates the connection to an external broker (Dial) with the password held
	// in PasswordFile; both or neither. Default "": none (a user in the URL still applies).
	User string
	// PasswordFile holds User's password (surrounding white space ignored), read on each
	// connection so that a rotated password applies from the next reconnection. Default "".
	PasswordFile string
	// TokenFile holds a token authenticating the connection, read on each connection.
	// Default "": none.
	TokenFile string
	// CredsFile is a NATS credentials file (user JWT and nkey seed, as nsc writes it), read on
	// each connection. Default "": none.
	CredsFile string
	// NKeyFile holds an nkey user seed ("SU..."): the connection signs the broker's challenge
	// with it. Default "": none. At most one of User, TokenFile, CredsFile and NKeyFile.
	NKeyFile string
	// ReconnectWait is the first delay between reconnection attempts; it doubles up to 5s. The
	// client reconnects forever. Default 100ms.
	ReconnectWait time.Duration
	// RequestTimeout bounds one publish or JetStream API call. Default 5s.
	RequestTimeout time.Duration
	// Logger receives the dead-letter and connection logs. Default slog.Default().
	Logger *slog.Logger
	// TLS connects to an external broker (Dial) over TLS: the CA pool and client certificate
	// come from its files on each new connection (nats.go's ClientTLSConfig), so rotated files
	// apply from the next reconnection; the name verified is ServerName, else the URL's host.
	// Default: nil (plaintext unless the URL is tls://).
	TLS *tlsfiles.Client
	// Registerer receives the consumer metrics (events_consumer_messages_total,
	// events_dead_letter_total). Default: none registered.
	Registerer prometheus.Registerer
}

func (c Config) withDefaults() (Config, error) {
	if c.Name == "" {
		c.Name = "shopgate"
	}
	if c.Stream == "" {
		c.Stream = "SHOP_EVENTS"
	}
	if c.SubjectPrefix == "" {
		c.SubjectPrefix = SubjectPrefix
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = 5
	}
	if c.BackOff == nil {
		c.BackOff = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond, 2 * time.Second, 5 * time.Second}
	}
	if c.AckWait == 0 {
		c.AckWait = 30 * time.Second
	}
	if c.HandlerTimeout == 0 {
		c.HandlerTimeout = c.AckWait
	}
	if c.MaxAckPending == 0 {
		c.MaxAckPending = 1000
	}
	if c.Duplicates == 0 {
		c.Duplicates = 10 * time.Minute
	}
	if c.MaxAge == 0 {
		c.MaxAge = 7 * 24 * time.Hour
	}
	if c.Replicas == 0 {
		c.Replicas = 1
	}
	if c.ReconnectWait == 0 {
		c.ReconnectWait = 100 * time.Millisecond
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	var errs []error
	if strings.ContainsAny(c.Stream, ". *>") {
		errs = append(errs, fmt.Errorf("stream name %q contains '.', '*', '>' or a space", c.Stream))
	}
	if !strings.HasSuffix(c.SubjectPrefix, ".") || strings.ContainsAny(c.SubjectPrefix, " *>") {
		errs = append(errs, fmt.Errorf("subject prefix %q must end with '.' and hold no wildcard", c.SubjectPrefix))
	}
	if c.MaxAttempts < 1 {
		errs = append(errs, fmt.Errorf("max attempts %d < 1", c.MaxAttempts))
	}
	for _, d := range c.BackOff {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("backoff %v is not positive", d))
			break
		}
	}
	if len(c.BackOff) == 0 {
		errs = append(errs, errors.New("backoff is empty"))
	}
	if c.AckWait < 0 || c.HandlerTimeout < 0 || c.Duplicates < 0 || c.MaxAge < 0 || c.ReconnectWait < 0 || c.RequestTimeout < 0 {
		errs = append(errs, errors.New("durations must not be negative"))
	}
	if c.HandlerTimeout > c.AckWait {
		errs = append(errs, fmt.Errorf("handler timeout %v exceeds ack wait %v", c.HandlerTimeout, c.AckWait))
	}
	if c.MaxAckPending < 1 || c.Replicas < 1 {
		errs = append(errs, errors.New("max ack pending and replicas must be at least 1"))
	}
	return c, errors.Join(errs...)
}

// backoff returns the redelivery delay after the attempt-th failure.
func (c Config) backoff(attempt int) time.Duration {
	i := attempt - 1
	if i >= len(c.BackOff) {
		i = len(c.BackOff) - 1
	}
	if i < 0 {
		i = 0
	}
	return c.BackOff[i]
}
