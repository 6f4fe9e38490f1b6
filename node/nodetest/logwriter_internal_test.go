package nodetest

import (
	"fmt"
	"testing"
)

// A passing benchmark's log is printed, so LogWriter keeps a benchmark's lines
// (the last benchLogLines) instead of logging them.
func TestLogWriterKeepsBenchmarkLines(t *testing.T) {
	var kept []string
	var keep bool
	testing.Benchmark(func(b *testing.B) {
		w := LogWriter(b).(*testWriter)
		for i := range benchLogLines + 50 {
			fmt.Fprintf(w, "line %d\n", i)
		}
		w.mu.Lock()
		keep, kept = w.keep, append([]string(nil), w.kept...)
		w.mu.Unlock()
	})
	if !keep {
		t.Fatal("a benchmark's writer logs its lines instead of keeping them")
	}
	if len(kept) != benchLogLines || kept[0] != "line 50" || kept[len(kept)-1] != fmt.Sprintf("line %d", benchLogLines+49) {
		t.Fatalf("kept %d lines, first %q: want the last %d", len(kept), kept[0], benchLogLines)
	}
}

// A test's writer logs each line.
func TestLogWriterLogsTestLines(t *testing.T) {
	w := LogWriter(t).(*testWriter)
	fmt.Fprintln(w, "a line for t.Log")
	if w.keep || len(w.kept) != 0 {
		t.Fatalf("a test's writer kept %d lines instead of logging them", len(w.kept))
	}
}
