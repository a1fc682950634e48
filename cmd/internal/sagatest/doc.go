// Package sagatest tests the order saga end to end with real processes: it builds cmd/orderd,
// cmd/paymentd and cmd/inventoryd, runs them on loopback ports against a real NATS JetStream
// broker (the machine's NATS at 127.0.0.1:4222 on a stream of the test's own, or a server the
// test runs and restarts), talks to them over gRPC with the gateway's passport metadata, and
// kills and restarts them (and the broker) in the middle of the flow. The storefront tests
// (storefront_test.go) add cmd/storefrontd and cmd/gateway in front of them and take one
// dependency away at a time.
//
// The package has no code of its own outside its tests.
package sagatest
