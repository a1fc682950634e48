package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

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
				// Revoked meanwhile: the next owner fetches from the committed offset. Logged,
				// because records of a partition this member still owns must never land here.
				s.b.cfg.Logger.Debug("kafka records of a partition without a worker dropped", "consumer", s.p.consumer,
					"partition", p.Partition, "records", len(p.Records), "first_offset", p.Records[0].Offset)
				return
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
