// Package events carries the order flow's events between the services, durably.
//
// A state change and the event it causes are written in one database transaction (Append, the
// transactional outbox); a relay publishes the outbox to the broker. A consumer records the event
// id in the same transaction as the event's effect (MarkProcessed, the inbox), so a redelivered
// event changes nothing. Every service database holds both tables: include Schema in its
// migrations.
//
// The transport:
//
//   - Broker is the small interface the rest needs: Publish (stored and acknowledged), Subscribe
//     (a durable consumer shared by every instance of a service) and Close. Two adapters
//     implement it. JetStream on NATS JetStream: Dial connects to an external server or cluster
//     by URL; StartEmbedded runs a server inside the process (file storage, no TCP port unless
//     asked for) whose Connect hands out in-process connections; the stream (Config.Stream,
//     subjects Config.SubjectPrefix + event type) is created or updated at connection and
//     deduplicates by message id (the event id). Kafka on Apache Kafka (franz-go; DialKafka,
//     -broker-url kafka://host:port,...): one topic (KafkaConfig.Topic, "shop.events") keyed by
//     order id, so that the events of one order keep their order across event types; a
//     consumer group per service; offsets committed only behind handled records; topics
//     created when missing with KafkaConfig.Partitions (12) and ReplicationFactor (3). Both
//     clients reconnect forever and the relay and consumers resume by themselves.
//   - Above the interface, shared by the adapters: the retry and dead-letter policy (one
//     dispatcher decides ack, retry after backoff or dead-letter for every delivery), the
//     attempt count (Message.Attempt) and the partition key (Message.Key, the order id).
//   - Relay publishes a service's outbox: committed rows in commit order, marked published after
//     the broker's ack; Notify wakes it at once after a commit, a poll interval is the safety net;
//     failed rounds back off; old published rows are pruned after a retention (24h), and inbox
//     entries once no redelivery can bring their event back (8 days).
//   - A consumer acknowledges a message only after its handler returned nil; a failure is
//     redelivered with backoff (Config.BackOff: 100ms, 500ms, 2s, 5s), and after
//     Config.MaxAttempts (5) the message goes to the dead-letter destination (JetStream: subject
//     <prefix>deadletter.<consumer>.<type>; Kafka: topic <topic>.deadletter.<consumer>), with the
//     HeaderDeadLetter* headers, a log line and the events_dead_letter_total counter. An error
//     wrapping ErrPermanent dead-letters at once. On Kafka a failing record is retried in place,
//     holding back the records after it in its partition (the order of an order's events wins
//     over throughput).
//   - Consumer and On map event types to a service's Handle* methods (each service's
//     subscriptions.go); Consume runs them on a Broker. On decodes the payload into the
//     handler's own event type once (a payload of another type fails permanently) and puts the
//     envelope's W3C trace context in the handler's ctx.
//   - Saga is the one shape of every handler in every service: Handle runs a Step in one
//     transaction with the inbox row (MarkProcessed) and appends the Outcome the step returns
//     (AppendOutcome: NewEnvelope with TraceContextFrom(ctx)), so every event carries the trace
//     context of the event that caused it, and so of the request that started the flow.
//   - Tracing (RuntimeConfig.TracerProvider; default nil, off): the relay publishes each event
//     in a producer span, the child of the context its envelope recorded, and sends the span's
//     W3C context in the message's headers (Message.Headers, NATS headers); the consumer
//     handles each delivery in a consumer span, the producer span's child, which the handler's
//     ctx carries, so that TraceContextFrom (and the events the handler records) name it.
//     Messaging conventions: messaging.system nats or kafka, messaging.destination.name the
//     subject with the default prefix or the topic, messaging.operation.type send or process, messaging.message.id
//     the event id.
//   - Start (Runtime) wires all of it for one service process; RuntimeConfig.RegisterFlags gives
//     the mains their -broker-url, -relay and related flags.
package events
