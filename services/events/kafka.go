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
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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

// Subscribe implements Broker with the consumer group consumer on the topic, starting from the
// oldest record when the group is new. Each partition is handled in order by its own
// goroutine; a record that fails is retried in place with the backoff (blocking its partition,
// so that the events of one order keep their order) until it succeeds or is dead-lettered to
// DeadLetterTopic(consumer), and only then is its offset marked for commit. Marked offsets are
// committed every second, when partitions are revoked (after their handlers returned) and at
// Stop; never past an unhandled record. Records of other types are skipped. When a partition
// moves while a record is retried, the commit of its offset carries the deliveries so far
// (commit metadata) and the next owner counts on from them; after a crash it counts from 1
// again. The group's session timeout is Config.AckWait (at least 6s): after it, a crashed
// instance's partitions move; its rebalance timeout (how long a revocation may wait for the
// handler in progress) is 60s, or AckWait and 10s more when that is longer.
func (b *Kafka) Subscribe(ctx context.Context, consumer string, types []string, h Handler) (Subscription, error) {
	if !kafkaName.MatchString(consumer) || strings.Contains(consumer, ".") || len(types) == 0 || h == nil {
		return nil, fmt.Errorf("subscribing %q: invalid consumer name, no types or nil handler", consumer)
	}
	if err := b.ensureTopics(ctx, b.DeadLetterTopic(consumer)); err != nil {
		return nil, fmt.Errorf("subscribing %s: %w", consumer, err)
	}
	s := &kafkaSubscription{b: b, types: make(map[string]bool, len(types)), workers: map[int32]*partitionWorker{},
		handedBack: map[int32]attempts{}, resumed: map[int32]attempts{}, done: make(chan struct{})}
	for _, t := range types {
		s.types[t] = true
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.pollCtx, s.pollCancel = context.WithCancel(context.Background())
	s.p = &dispatcher{consumer: consumer, cfg: b.cfg, metrics: b.metrics, h: h, ctx: s.ctx,
		deadLetter: func(ctx context.Context, dl Message) error { return b.produce(ctx, b.DeadLetterTopic(consumer), dl) }}
	session := max(b.cfg.AckWait, 6*time.Second)
	opts := append(b.opts[:len(b.opts):len(b.opts)],
		kgo.ConsumerGroup(consumer),
		kgo.ConsumeTopics(b.kcfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.AutoCommitMarks(),
		kgo.AutoCommitInterval(time.Second),
		kgo.SessionTimeout(session),
		kgo.RebalanceTimeout(max(60*time.Second, b.cfg.AckWait+10*time.Second)),
		// A member hears of a rebalance at its next heartbeat: every second at most, so that a
		// stopped instance's partitions move within a second or two.
		kgo.HeartbeatInterval(min(session/10, time.Second)),
		// A fetch waits for records at most a second (default 5s): a partition assigned
		// meanwhile joins the next fetch, so it starts within a second.
		kgo.FetchMaxWait(time.Second),
		kgo.OnPartitionsAssigned(s.assigned),
		kgo.OnPartitionsRevoked(s.revoked),
		kgo.OnPartitionsLost(s.lost),
		kgo.OnOffsetsFetched(s.offsetsFetched),
	)
	var err error
	if s.cl, err = kgo.NewClient(opts...); err != nil {
		s.cancel()
		s.pollCancel()
		return nil, fmt.Errorf("subscribing %s: %w", consumer, err)
	}
	go s.poll()
	return s, nil
}

type kafkaSubscription struct {
	b      *Kafka
	types  map[string]bool
	p      *dispatcher
	cl     *kgo.Client
	ctx    context.Context // the handlers': cancelled at the end of Stop
	cancel context.CancelFunc

	pollCtx    context.Context // the poll loop's: cancelled first by Stop
	pollCancel context.CancelFunc
	done       chan struct{} // closed when the poll loop returned

	mu      sync.Mutex
	workers map[int32]*partitionWorker // by partition of the topic
	// handedBack: by partition, the record a stopped worker was retrying and its deliveries so
	// far; the commit of its offset carries them (commit metadata) to the next owner.
	handedBack map[int32]attempts
	// resumed: by partition, the attempts the previous owner recorded with the committed offset.
	resumed map[int32]attempts
	once    sync.Once
}

// attempts is how many deliveries the record at offset had.
type attempts struct {
	offset int64
	n      int
}

// attemptsMetadata prefixes the commit metadata that carries attempts to the next owner.
const attemptsMetadata = "shop-attempts:"

// maxQueued is how many fetched records one partition's worker holds before the partition's
// fetching pauses (a record being retried holds its partition back, not the others).
const maxQueued = 500

// partitionWorker handles one assigned partition's records, in order.
type partitionWorker struct {
	partition int32
	ctx       context.Context // cancelled on revocation: no record is started after it
	cancel    context.CancelFunc
	wake      chan struct{} // signalled when records are queued
	done      chan struct{}
	next      int64 // the offset after the last record handled; -1: none yet

	mu     sync.Mutex
	queue  []*kgo.Record
	paused bool // fetching the partition is paused until the worker takes the queue
}

func (s *kafkaSubscription) poll() {
	defer close(s.done)
	for {
		fetches := s.cl.PollRecords(s.pollCtx, 500)
		if s.pollCtx.Err() != nil || fetches.IsClientClosed() {
			return
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				s.b.cfg.Logger.Debug("kafka fetch", "consumer", s.p.consumer, "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachPartition(func(p kgo.FetchTopicPartition) {
			if len(p.Records) == 0 {
				return
			}
			s.mu.Lock()
			w := s.workers[p.Partition]
			s.mu.Unlock()
			if w == nil {
				return // revoked meanwhile: the next owner fetches from the committed offset
			}
			w.mu.Lock()
			w.queue = append(w.queue, p.Records...)
			if len(w.queue) >= maxQueued && !w.paused {
				w.paused = true
				s.cl.PauseFetchPartitions(map[string][]int32{s.b.kcfg.Topic: {p.Partition}})
			}
			w.mu.Unlock()
			select {
			case w.wake <- struct{}{}:
			default:
			}
		})
	}
}

// take returns the queued records and resumes the partition's fetching if it was paused.
func (s *kafkaSubscription) take(w *partitionWorker) []*kgo.Record {
	w.mu.Lock()
	defer w.mu.Unlock()
	recs := w.queue
	w.queue = nil
	if w.paused {
		w.paused = false
		s.cl.ResumeFetchPartitions(map[string][]int32{s.b.kcfg.Topic: {w.partition}})
	}
	return recs
}

func (s *kafkaSubscription) assigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, p := range assigned[s.b.kcfg.Topic] {
		if s.workers[p] != nil {
			continue
		}
		delete(s.handedBack, p)
		w := &partitionWorker{partition: p, wake: make(chan struct{}, 1), done: make(chan struct{}), next: -1}
		w.ctx, w.cancel = context.WithCancel(s.ctx)
		s.workers[p] = w
		go s.work(w)
	}
}

// revoked stops the revoked partitions' workers, waits for their handlers and commits what
// they finished, before the partitions go to another instance.
func (s *kafkaSubscription) revoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	s.stopWorkers(revoked[s.b.kcfg.Topic], false)
	s.commit(ctx)
}

// offsetsFetched reads the attempts the previous owners recorded with the committed offsets.
func (s *kafkaSubscription) offsetsFetched(_ context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	record := func(partition int32, offset int64, metadata *string) {
		if metadata == nil {
			return
		}
		if n, err := strconv.Atoi(strings.TrimPrefix(*metadata, attemptsMetadata)); err == nil && n > 0 &&
			strings.HasPrefix(*metadata, attemptsMetadata) {
			s.resumed[partition] = attempts{offset: offset, n: n}
		}
	}
	for _, t := range resp.Topics { // one topic consumed: every partition is the topic's
		for _, p := range t.Partitions {
			record(p.Partition, p.Offset, p.Metadata)
		}
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				record(p.Partition, p.Offset, p.Metadata)
			}
		}
	}
	return nil
}

// withAttempts returns ctx making every offset commit of a handed-back record's offset carry
// its attempts as the commit metadata.
func (s *kafkaSubscription) withAttempts(ctx context.Context) context.Context {
	return kgo.PreCommitFnContext(ctx, func(req *kmsg.OffsetCommitRequest) error {
		s.mu.Lock()
		defer s.mu.Unlock()
		for ti := range req.Topics {
			for pi := range req.Topics[ti].Partitions {
				p := &req.Topics[ti].Partitions[pi]
				if a, ok := s.handedBack[p.Partition]; ok && a.offset == p.Offset {
					md := attemptsMetadata + strconv.Itoa(a.n)
					p.Metadata = &md
				}
			}
		}
		return nil
	})
}

// lost stops the lost partitions' workers; committing is pointless, the group moved on.
func (s *kafkaSubscription) lost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	s.stopWorkers(lost[s.b.kcfg.Topic], false)
}

// stopWorkers stops the workers of partitions (all of them with all) and waits for them.
func (s *kafkaSubscription) stopWorkers(partitions []int32, all bool) {
	s.mu.Lock()
	var stopped []*partitionWorker
	if all {
		for p, w := range s.workers {
			stopped = append(stopped, w)
			delete(s.workers, p)
		}
	}
	for _, p := range partitions {
		if w := s.workers[p]; w != nil {
			stopped = append(stopped, w)
			delete(s.workers, p)
		}
	}
	s.mu.Unlock()
	for _, w := range stopped {
		w.cancel()
	}
	for _, w := range stopped {
		<-w.done
		s.take(w) // drops what it did not handle, resumes its partition if paused
	}
}

// commit commits the marked offsets, then the offsets of the handed-back records with their
// attempts (the same offsets the marks reached: never past an unhandled record).
func (s *kafkaSubscription) commit(ctx context.Context) {
	ctx, cancel := context.WithTimeout(s.withAttempts(ctx), s.b.cfg.RequestTimeout)
	defer cancel()
	if err := s.cl.CommitMarkedOffsets(ctx); err != nil {
		s.b.cfg.Logger.Warn("committing kafka offsets", "consumer", s.p.consumer, "err", err)
	}
	s.mu.Lock()
	handedBack := make(map[int32]kgo.EpochOffset, len(s.handedBack))
	for p, a := range s.handedBack {
		if s.workers[p] == nil { // no longer handled here
			handedBack[p] = kgo.EpochOffset{Epoch: -1, Offset: a.offset}
		}
	}
	s.mu.Unlock()
	if len(handedBack) == 0 {
		return
	}
	s.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{s.b.kcfg.Topic: handedBack},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, _ *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				s.b.cfg.Logger.Warn("committing the attempts of a handed-back kafka record", "consumer", s.p.consumer, "err", err)
			}
		})
}

func (s *kafkaSubscription) work(w *partitionWorker) {
	defer close(w.done)
	for {
		select {
		case <-w.wake:
		case <-w.ctx.Done():
			return
		}
		for _, r := range s.take(w) {
			if w.ctx.Err() != nil {
				return
			}
			if r.Offset < w.next {
				continue // fetched before a revocation and handled since
			}
			if !s.handle(w, r) {
				return
			}
			w.next = r.Offset + 1
			s.cl.MarkCommitRecords(r)
		}
	}
}

// handle delivers r until the policy acknowledged or dead-lettered it (true), retrying in
// place after each failure's backoff; false when the worker stopped first.
func (s *kafkaSubscription) handle(w *partitionWorker, r *kgo.Record) bool {
	msg := recordMessage(r)
	if !s.types[msg.Type] {
		return true
	}
	first := 1
	s.mu.Lock()
	if a, ok := s.resumed[w.partition]; ok && a.offset == r.Offset {
		first = a.n + 1 // the previous owner's deliveries count
	}
	delete(s.resumed, w.partition)
	s.mu.Unlock()
	handBack := func(n int) bool {
		s.mu.Lock()
		s.handedBack[w.partition] = attempts{offset: r.Offset, n: n}
		s.mu.Unlock()
		return false
	}
	for attempt := first; ; attempt++ {
		msg.Attempt = attempt
		var after time.Duration
		out := s.p.deliver(delivery{
			msg:     msg,
			source:  r.Topic,
			ack:     func() error { return nil }, // marked by work
			retry:   func(d time.Duration) error { after = d; return nil },
			release: func() error { return nil },
		})
		switch out {
		case outcomeAcked, outcomeDeadLetter:
			return true
		case outcomeReleased:
			return handBack(attempt)
		}
		t := time.NewTimer(after)
		select {
		case <-t.C:
		case <-w.ctx.Done():
			t.Stop()
			return handBack(attempt)
		}
	}
}

// Stop implements Subscription: it stops fetching, waits for the handlers in progress,
// commits what they finished and leaves the group, so that the partitions move at once.
func (s *kafkaSubscription) Stop() {
	s.once.Do(func() {
		s.pollCancel()
		<-s.done
		s.stopWorkers(nil, true)
		s.commit(context.Background())
		s.cancel()
		s.cl.Close()
	})
}
