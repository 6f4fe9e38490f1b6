package cluster

import "testing"

// TestPeerKeepaliveAllowed: peers never ping more often than the server allows;
// otherwise it would close their connections with GOAWAY (too many pings).
func TestPeerKeepaliveAllowed(t *testing.T) {
	if peerKeepalive.Time < peerKeepaliveEnforcement.MinTime {
		t.Fatalf("client pings every %v, server allows every %v", peerKeepalive.Time, peerKeepaliveEnforcement.MinTime)
	}
	if peerKeepalive.PermitWithoutStream && !peerKeepaliveEnforcement.PermitWithoutStream {
		t.Fatal("client pings without streams, server refuses that")
	}
}
