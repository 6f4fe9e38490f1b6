package session_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind (the concurrency
// tests start many).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
