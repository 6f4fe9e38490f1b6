package cluster

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

// TestSlogWriterLevels: memberlist writes every line, debug chatter included, and
// Raft its warnings and errors, through slogWriter; each must keep its level, or
// every gossip push/pull shows up as a warning.
func TestSlogWriterLevels(t *testing.T) {
	for _, tc := range []struct {
		line string
		want string // slog level name, "" for dropped at Info
	}{
		{"2026/11/22 06:45:27 [DEBUG] memberlist: Initiating push/pull sync with: 127.0.0.1:1\n", ""},
		{"2026/11/22 06:45:27 [INFO] memberlist: Suspect n1 has failed, no acks received\n", "INFO"},
		{"2026/11/22 06:45:27 [WARN] memberlist: Refuting a suspect message\n", "WARN"},
		{"2026/11/22 06:45:27 [ERR] memberlist: Failed to send UDP ping: closed\n", "ERROR"},
		{"2026-11-22T06:45:28.303Z [WARN]  raft: failed to contact: server-id=n3\n", "WARN"},
		{"2026-11-22T06:45:28.303Z [ERROR] raft: failed to appendEntries to: peer=n3\n", "ERROR"},
		{"something without a level\n", "WARN"},
	} {
		var buf bytes.Buffer
		w := slogWriter{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
		if n, err := w.Write([]byte(tc.line)); err != nil || n != len(tc.line) {
			t.Fatalf("Write = %d, %v", n, err)
		}
		out := buf.String()
		if tc.want == "" {
			if out != "" {
				t.Errorf("%q logged at Info level: %s", tc.line, out)
			}
			continue
		}
		if !strings.Contains(out, "level="+tc.want) {
			t.Errorf("%q logged as %s, want level %s", tc.line, strings.TrimSpace(out), tc.want)
		}
	}
}
