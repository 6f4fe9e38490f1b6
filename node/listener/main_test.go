package listener_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if a test leaves a goroutine behind: a TLS handshake, an
// HTTP server or a WebSocket connection not closed.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
