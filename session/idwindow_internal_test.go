package session

import "testing"

// TestIDWindowGrowsWithUse: a window holds the last max ids, and room only for the
// ids added: it used to allocate room for all max (1 MiB at the default) for every
// imported session, however few messages came both ways.
func TestIDWindowGrowsWithUse(t *testing.T) {
	w := newIDWindow(0)
	if got := cap(w.ring); got > 0 {
		t.Fatalf("a fresh window has room for %d ids, want none yet", got)
	}
	for i := range 10 {
		if !w.add(MessageID{Origin: 1, Seq: uint64(i)}) {
			t.Fatalf("id %d reported seen on first add", i)
		}
	}
	if w.add(MessageID{Origin: 1, Seq: 3}) {
		t.Fatal("an id added before is reported new")
	}
	if got := cap(w.ring); got > 64 {
		t.Fatalf("10 ids took room for %d", got)
	}

	// Past max, the oldest ids are forgotten first.
	small := newIDWindow(3)
	for i := range 5 {
		small.add(MessageID{Origin: 2, Seq: uint64(i)})
	}
	if small.add(MessageID{Origin: 2, Seq: 4}) || small.add(MessageID{Origin: 2, Seq: 2}) {
		t.Fatal("one of the last 3 ids is reported new")
	}
	if !small.add(MessageID{Origin: 2, Seq: 0}) {
		t.Fatal("an id older than the last 3 is still remembered")
	}
	if len(small.set) != 3 || len(small.ring) != 3 {
		t.Fatalf("window of 3 holds %d ids (ring %d)", len(small.set), len(small.ring))
	}
}
