package events_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves a goroutine running: every relay, consumer,
// connection and embedded server must be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
