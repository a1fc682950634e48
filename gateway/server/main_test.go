package server

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (servers, upstream
// connections, policy stages).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
