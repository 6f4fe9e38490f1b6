package auth

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind, such as the waiter
// of a mosquitto child process.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
