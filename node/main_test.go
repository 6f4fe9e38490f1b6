package node_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind: every
// connection's reader and writer, every timer callback and accept loop must be gone
// once the brokers of the tests are shut down.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
