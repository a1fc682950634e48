package events

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The Kafka record headers that carry a Message's Type and ID (the record key is its Key, the
// value its Data; Message.Headers are the other headers).
const (
	HeaderEventType = "Shop-Event-Type"
	HeaderEventID   = "Shop-Event-Id"
)

// KafkaConfig configures the Kafka side of a Broker connection (DialKafka); the retry and
// dead-letter policy, Name, TLS, Logger and Registerer come from Config. Its zero value means
// the defaults.
type KafkaConfig struct {
	// Topic holds every event, keyed by order id (Message.Key), so that the events of one order
	// stay in one partition, in order, whatever their type. Consumer <c>'s dead letters go to
	// <Topic>.deadletter.<c>. Default DefaultKafkaTopic ("shop.events").
	Topic string
	// Partitions of the topics created when missing (existing topics are left as they are).
	// It bounds how many instances of one service consume in parallel. Default 12.
	Partitions int
	// ReplicationFactor of the topics created when missing; with 3 or more the topics also get
	// min.insync.replicas=2, so that an acknowledged publish (acks=all) survives one broker.
	// Default 3: a single-broker development cluster needs 1.
	ReplicationFactor int
	// SASLMechanism authenticates the connection: "" (none), "PLAIN", "SCRAM-SHA-256" or
	// "SCRAM-SHA-512", with SASLUser and SASLPassword. Use it with TLS. Default "".
	SASLMechanism, SASLUser, SASLPassword string
}

// registerKafkaFlags defines -broker-topic, -broker-partitions, -broker-replication-factor and
// -broker-sasl-mechanism on fs, into c.
func registerKafkaFlags(fs *flag.FlagSet, c *KafkaConfig) {
	fs.StringVar(&c.Topic, "broker-topic", c.Topic, "Kafka topic of the events, keyed by order id (default "+DefaultKafkaTopic+")")
	fs.IntVar(&c.Partitions, "broker-partitions", c.Partitions, "partitions of the Kafka topics created when missing (default 12)")
	fs.IntVar(&c.ReplicationFactor, "broker-replication-factor", c.ReplicationFactor, "replication factor of the Kafka topics created when missing (default 3; 1 for a single broker)")
	fs.StringVar(&c.SASLMechanism, "broker-sasl-mechanism", c.SASLMechanism, "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (default none)")
}

// DefaultKafkaTopic is KafkaConfig.Topic's default.
const DefaultKafkaTopic = "shop.events"

// kafkaName is what Kafka allows in a topic name.
var kafkaName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,200}$`)

func (c KafkaConfig) withDefaults() (KafkaConfig, error) {
	if c.Topic == "" {
		c.Topic = DefaultKafkaTopic
	}
	if c.Partitions == 0 {
		c.Partitions = 12
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 3
	}
	var errs []error
	if !kafkaName.MatchString(c.Topic) {
		errs = append(errs, fmt.Errorf("kafka topic %q: want 1 to 200 of [A-Za-z0-9._-]", c.Topic))
	}
	if c.Partitions < 1 || c.Partitions > 1<<20 || c.ReplicationFactor < 1 || c.ReplicationFactor > 1<<10 {
		errs = append(errs, fmt.Errorf("kafka partitions %d and replication factor %d must be positive", c.Partitions, c.ReplicationFactor))
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
	case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
		if c.SASLUser == "" {
			errs = append(errs, fmt.Errorf("kafka SASL %s needs a user", c.SASLMechanism))
		}
	default:
		errs = append(errs, fmt.Errorf("kafka SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.SASLMechanism))
	}
	return c, errors.Join(errs...)
}

// Kafka is the Broker on Apache Kafka (franz-go): one topic keyed by order id, a consumer group
// per service, offsets committed only behind handled records, blocking in-partition retries
// and a dead-letter topic per consumer. Safe for concurrent use.
type Kafka struct {
	cfg     Config
	kcfg    KafkaConfig
	opts    []kgo.Opt // seeds, TLS, SASL, client id: shared by the producer and the consumers
	cl      *kgo.Client
	adm     *kadm.Client
	metrics *consumerMetrics
}

var _ Broker = (*Kafka)(nil)

func init() {
	registerScheme("kafka", func(ctx context.Context, url string, cfg Config) (Broker, error) {
		return nilIfFailed(DialKafka(ctx, url, cfg))
	})
}

// ParseKafkaURL returns the seed brokers of url: "kafka://host:port[,host:port...]" (each
// element may repeat the scheme).
func ParseKafkaURL(url string) ([]string, error) {
	rest, ok := strings.CutPrefix(url, "kafka://")
	if !ok {
		return nil, fmt.Errorf("kafka url %q: want kafka://host:port[,host:port]", url)
	}
	var seeds []string
	for _, s := range strings.Split(rest, ",") {
		s = strings.TrimPrefix(strings.TrimSpace(s), "kafka://")
		host, port, err := net.SplitHostPort(s)
		if err != nil || host == "" {
			return nil, fmt.Errorf("kafka url %q: broker %q: want host:port", url, s)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("kafka url %q: broker %q: bad port", url, s)
		}
		seeds = append(seeds, s)
	}
	return seeds, nil
}

// DialKafka connects to the Kafka cluster at url (kafka://host:port[,host:port]) and creates
// the events topic when it is missing (cfg.Kafka's partitions and replication factor). The
// producer waits for every in-sync replica (acks=all) and is idempotent. DialKafka retries
// until ctx is done while no broker answers; an invalid topic setting fails at once.
func DialKafka(ctx context.Context, url string, cfg Config) (*Kafka, error) {
	seeds, err := ParseKafkaURL(url)
	if err != nil {
		return nil, fmt.Errorf("dialing kafka: %w", err)
	}
	if cfg, err = cfg.withDefaults(); err != nil {
		return nil, fmt.Errorf("dialing kafka: %w", err)
	}
	if cfg.Kafka.SASLUser == "" && cfg.User != "" {
		cfg.Kafka.SASLUser = cfg.User // -broker-user and -broker-password-file serve both brokers
	}
	kcfg, err := cfg.Kafka.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("dialing kafka: %w", err)
	}
	metrics, err := newConsumerMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dialing kafka: registering metrics: %w", err)
	}
	b := &Kafka{cfg: cfg, kcfg: kcfg, metrics: metrics}
	b.opts = []kgo.Opt{
		kgo.SeedBrokers(seeds...),
		kgo.ClientID(cfg.Name),
		kgo.RequestTimeoutOverhead(cfg.RequestTimeout),
		// After a broker dies, look for the partitions' new leaders within a second, not the
		// default 5s.
		kgo.MetadataMinAge(time.Second),
		kgo.RetryBackoffFn(func(tries int) time.Duration {
			d := cfg.ReconnectWait
			for i := 1; i < tries && d < 2*time.Second; i++ {
				d *= 2
			}
			return min(d, 2*time.Second)
		}),
	}
	if c := cfg.TLS; c != nil {
		b.opts = append(b.opts, kgo.Dialer(func(ctx context.Context, network, host string) (net.Conn, error) {
			name, _, err := net.SplitHostPort(host)
			if err != nil {
				name = host
			}
			d := &tls.Dialer{NetDialer: &net.Dialer{Timeout: cfg.RequestTimeout}, Config: c.ConfigFor(name)}
			return d.DialContext(ctx, network, host)
		}))
	}
	// The password: SASLPassword, else -broker-password-file's, read again at each
	// authentication so that a rotated file applies to the next connection.
	password := func() string { return kcfg.SASLPassword }
	if kcfg.SASLPassword == "" && cfg.PasswordFile != "" {
		password = (&fileSecret{path: cfg.PasswordFile, what: "password", log: cfg.Logger}).get
	}
	switch strings.ToUpper(kcfg.SASLMechanism) {
	case "PLAIN":
		b.opts = append(b.opts, kgo.SASL(plain.Plain(func(context.Context) (plain.Auth, error) {
			return plain.Auth{User: kcfg.SASLUser, Pass: password()}, nil
		})))
	case "SCRAM-SHA-256":
		b.opts = append(b.opts, kgo.SASL(scram.Sha256(func(context.Context) (scram.Auth, error) {
			return scram.Auth{User: kcfg.SASLUser, Pass: password()}, nil
		})))
	case "SCRAM-SHA-512":
		b.opts = append(b.opts, kgo.SASL(scram.Sha512(func(context.Context) (scram.Auth, error) {
			return scram.Auth{User: kcfg.SASLUser, Pass: password()}, nil
		})))
	}
	producer := append(b.opts[:len(b.opts):len(b.opts)],
		kgo.RequiredAcks(kgo.AllISRAcks()),                   // the default, stated: idempotence needs it
		kgo.ProducerLinger(0),                                // the relay publishes one row at a time and waits
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)), // murmur2 of the key, as the Java client
	)
	if b.cl, err = kgo.NewClient(producer...); err != nil {
		return nil, fmt.Errorf("dialing kafka: %w", err)
	}
	b.adm = kadm.NewClient(b.cl)
	if err := b.ensureTopics(ctx, kcfg.Topic); err != nil {
		b.cl.Close()
		return nil, fmt.Errorf("dialing kafka: %w", err)
	}
	return b, nil
}

// ensureTopics creates the topics that are missing, with the configured partitions and
// replication factor, retention.ms = Config.MaxAge (the inbox outlasts it) and, from a
// replication factor of 3, min.insync.replicas=2; retrying until ctx is done while the cluster does not answer.
func (b *Kafka) ensureTopics(ctx context.Context, topics ...string) error {
	retention := strconv.FormatInt(b.cfg.MaxAge.Milliseconds(), 10)
	configs := map[string]*string{"retention.ms": &retention}
	if b.kcfg.ReplicationFactor >= 3 {
		two := "2"
		configs["min.insync.replicas"] = &two
	}
	var fatal error
	err := retry(ctx, b.cfg.ReconnectWait, func() error {
		cctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		defer cancel()
		resps, err := b.adm.CreateTopics(cctx, int32(b.kcfg.Partitions), int16(b.kcfg.ReplicationFactor), configs, topics...)
		if err != nil {
			return err
		}
		var errs []error
		for _, r := range resps.Sorted() {
			switch {
			case r.Err == nil, errors.Is(r.Err, kerr.TopicAlreadyExists):
			case errors.Is(r.Err, kerr.InvalidReplicationFactor), errors.Is(r.Err, kerr.InvalidPartitions),
				errors.Is(r.Err, kerr.InvalidTopicException), errors.Is(r.Err, kerr.InvalidConfig),
				errors.Is(r.Err, kerr.TopicAuthorizationFailed), errors.Is(r.Err, kerr.ClusterAuthorizationFailed):
				fatal = errors.Join(fatal, fmt.Errorf("creating topic %s (%d partitions, replication factor %d): %w %s",
					r.Topic, b.kcfg.Partitions, b.kcfg.ReplicationFactor, r.Err, r.ErrMessage))
			default:
				errs = append(errs, fmt.Errorf("creating topic %s: %w", r.Topic, r.Err))
			}
		}
		if fatal != nil {
			return nil
		}
		return errors.Join(errs...)
	})
	if fatal != nil {
		return fatal
	}
	return err
}

// Topic returns the events topic.
func (b *Kafka) Topic() string { return b.kcfg.Topic }

// DeadLetterTopic returns where consumer's given-up messages go: <topic>.deadletter.<consumer>.
func (b *Kafka) DeadLetterTopic(consumer string) string {
	return b.kcfg.Topic + "." + DeadLetterName(consumer)
}

// Client returns the producer's franz-go client, for inspection in tests and tools.
func (b *Kafka) Client() *kgo.Client { return b.cl }

func (b *Kafka) messagingSystem() string { return "kafka" }

func (b *Kafka) destination(string) string { return b.kcfg.Topic }

// Publish implements Broker: one record on the topic, keyed by msg.Key (msg.ID when it has
// none), acknowledged by every in-sync replica. Kafka does not deduplicate by msg.ID: a
// message published again is delivered again, and the consumers' inbox drops it.
func (b *Kafka) Publish(ctx context.Context, msg Message) error {
	return b.produce(ctx, b.kcfg.Topic, msg)
}

// PublishBatch publishes msgs as Publish does, pipelined: one round trip for the batch, not one
// per message. The idempotent producer keeps each partition's order and fails the records of
// a partition that follow a failed one.
func (b *Kafka) PublishBatch(ctx context.Context, msgs []Message) []error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	recs := make([]*kgo.Record, len(msgs))
	for i, m := range msgs {
		recs[i] = kafkaRecord(b.kcfg.Topic, m)
	}
	index := make(map[*kgo.Record]int, len(recs))
	for i, r := range recs {
		index[r] = i
	}
	errs := make([]error, len(msgs))
	for _, r := range b.cl.ProduceSync(ctx, recs...) { // in the order of completion
		if i, ok := index[r.Record]; ok && r.Err != nil {
			errs[i] = fmt.Errorf("publishing %s %s: %w", msgs[i].Type, msgs[i].ID, r.Err)
		}
	}
	return errs
}

func (b *Kafka) produce(ctx context.Context, topic string, msg Message) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	if err := b.cl.ProduceSync(ctx, kafkaRecord(topic, msg)).FirstErr(); err != nil {
		return fmt.Errorf("publishing %s %s: %w", msg.Type, msg.ID, err)
	}
	return nil
}

// kafkaRecord is msg as a record on topic.
func kafkaRecord(topic string, msg Message) *kgo.Record {
	key := msg.Key
	if key == "" {
		key = msg.ID
	}
	r := &kgo.Record{Topic: topic, Key: []byte(key), Value: msg.Data,
		Headers: make([]kgo.RecordHeader, 0, 2+len(msg.Headers))}
	r.Headers = append(r.Headers, kgo.RecordHeader{Key: HeaderEventType, Value: []byte(msg.Type)},
		kgo.RecordHeader{Key: HeaderEventID, Value: []byte(msg.ID)})
	keys := make([]string, 0, len(msg.Headers))
	for k := range msg.Headers {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		r.Headers = append(r.Headers, kgo.RecordHeader{Key: k, Value: []byte(msg.Headers[k])})
	}
	return r
}

// recordMessage is the Message of a delivered record (Attempt unset).
func recordMessage(r *kgo.Record) Message {
	m := Message{Key: string(r.Key), Data: r.Value}
	for _, h := range r.Headers {
		switch h.Key {
		case HeaderEventType:
			m.Type = string(h.Value)
		case HeaderEventID:
			m.ID = string(h.Value)
		default:
			if m.Headers == nil {
				m.Headers = make(map[string]string, 2)
			}
			m.Headers[h.Key] = string(h.Value)
		}
	}
	return m
}

// Close implements Broker: it flushes what is buffered and closes the producer.
func (b *Kafka) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_ = b.cl.Flush(ctx)
	b.cl.Close()
	return nil
}
