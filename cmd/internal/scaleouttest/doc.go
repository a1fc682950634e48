// Package scaleouttest is the acceptance test of the distributed deployment (issue 14's "Done
// means") and the saga's throughput benchmark. It has no code of its own outside its tests.
//
// TestScaleOut builds cmd/gateway, cmd/orderd, cmd/paymentd and cmd/inventoryd and runs, on
// loopback ports, two gateways in front of two replicas of each service, on a backend named by
// the subtest: the stores, the event broker and the gateways' shared rate limit. It seeds stock,
// places 500 orders through both gateways at once (with an Idempotency-Key each and a client's
// retries on 5xx, transport errors and timeouts, which must not create an order twice), and
// meanwhile kills (SIGKILL) one replica of each service and then one gateway, restarting each,
// and stops one broker node and starts it again. The replica never killed publishes every event twice (-relay-duplicate-for-testing)
// while its relay holds its service's outbox, so that the inboxes are put to the test; every
// fifth order is sent twice at once, through both gateways, with one key. At the end every
// order must be CONFIRMED or CANCELLED, the stock must add up exactly
// (initial = available + units of the confirmed orders, nothing left reserved), every
// confirmed order must have exactly one captured payment and no cancelled one a captured
// payment, no saga step may have taken effect twice (one payment at most per order, each
// service's outbox holding each step's event once per order), and a burst from one client
// identity split across both gateways must be admitted no more than the shared limit allows.
//
// The backends (backends_test.go): kafka_postgres (PostgreSQL stores, one schema per service,
// a three-broker kfake Kafka cluster in the test process on TCP, a Redis Cluster of
// redis-server processes; Kafka broker 1 is stopped) and nats_r3_postgres (the same with a
// three-node NATS cluster, the stream and consumers at R3; the stream's leader is killed).
// At the end each also checks that every consumer group or durable consumer has caught up and
// that the events are replicated three ways. A part the machine lacks (PostgreSQL at
// 127.0.0.1:5432, redis-server) skips the subtest, or fails it when CI=true.
//
// BenchmarkSaga measures confirmed orders per second end to end, through the gateway: a
// client places an order (POST /v1/orders) and follows it (GET /v1/orders/{id}:watch) until it
// is final, with many clients at once. `make bench-saga` runs it on the embedded default
// (cmd/shop, as `make run` starts it), on the service binaries with SQLite and the machine's
// NATS (local backend, backend_test.go), on PostgreSQL with Kafka and on PostgreSQL with NATS
// at R3 (one replica of each service and one gateway), and prints them side by side.
package scaleouttest
