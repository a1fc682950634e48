// Package scaleouttest is the acceptance test of the distributed deployment (issue 14's "Done
// means") and the saga's throughput benchmark. It has no code of its own outside its tests.
//
// TestScaleOut builds cmd/gateway, cmd/orderd, cmd/paymentd and cmd/inventoryd and runs, on
// loopback ports, two gateways in front of two replicas of each service, on a backend named by
// the subtest: the stores, the event broker and the gateways' shared rate limit. It seeds stock,
// places 500 orders through both gateways at once (with an Idempotency-Key each and a client's
// retries on 5xx and timeouts, which must not create an order twice), and meanwhile kills
// (SIGKILL) one replica of each service and restarts it, and stops one broker node and starts it
// again. At the end every order must be CONFIRMED or CANCELLED, the stock must add up exactly
// (initial = available + units of the confirmed orders, nothing left reserved), every
// confirmed order must have exactly one captured payment and no cancelled one a captured
// payment, no saga step may have taken effect twice (one payment at most per order, each
// service's outbox holding each step's event once per order), and a burst from one client
// identity split across both gateways must be admitted no more than the shared limit allows.
//
// The backends (backend_test.go): kafka_postgres (PostgreSQL stores, a three-broker kfake
// Kafka cluster in the test process, a Redis Cluster of redis-server processes) and
// nats_r3_postgres (the same with a three-node NATS cluster and streams at R3); local_sqlite
// (SQLite files shared by the replicas, the machine's NATS, one Redis) runs where those are not
// needed. A backend a machine lacks skips its subtest, or fails it when CI=true.
//
// BenchmarkSaga measures confirmed orders per second end to end, through the gateway: a
// client places an order (POST /v1/orders) and follows it (GET /v1/orders/{id}:watch) until it
// is final, with many clients at once. `make bench-saga` runs it on the embedded default
// (cmd/shop, as `make run` starts it) and on PostgreSQL and Kafka, and prints both side by side.
package scaleouttest
