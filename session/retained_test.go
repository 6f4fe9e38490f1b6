package session_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/skein-mq/skein/session"
)

func retainedMsg(topic, payload string) *session.Message {
	return &session.Message{Topic: topic, Payload: []byte(payload), QoS: 1, Retain: true}
}

// matchAll returns "topic=payload" for every retained message filter matches, sorted.
func matchAll(t *testing.T, r session.RetainedStore, filter string) []string {
	t.Helper()
	var got []string
	err := r.Match(filter, func(m *session.Message) bool {
		got = append(got, m.Topic+"="+string(m.Payload))
		return true
	})
	if err != nil {
		t.Fatalf("Match(%q): %v", filter, err)
	}
	slices.Sort(got)
	return got
}

func TestMemoryRetainedMatch(t *testing.T) {
	var _ session.RetainedStore = session.NewMemoryRetained()
	r := session.NewMemoryRetained()
	for _, topic := range []string{"a", "a/b", "a/c", "a/b/c", "b", "/lead", "trail/", "$SYS/x", "$SYS/broker/load"} {
		if _, err := r.Set(retainedMsg(topic, "v")); err != nil {
			t.Fatalf("Set(%q): %v", topic, err)
		}
	}
	cases := []struct {
		filter string
		want   []string // topics
	}{
		{"a", []string{"a"}},
		{"a/b", []string{"a/b"}},
		{"nomatch", nil},
		{"a/#", []string{"a", "a/b", "a/b/c", "a/c"}}, // # matches the parent level too
		{"a/b/c/#", []string{"a/b/c"}},
		{"a/+", []string{"a/b", "a/c"}},
		{"a/+/c", []string{"a/b/c"}},
		{"+", []string{"a", "b"}},
		{"+/b", []string{"a/b"}},
		{"+/+", []string{"/lead", "a/b", "a/c", "trail/"}},
		{"+/lead", []string{"/lead"}},
		{"trail/+", []string{"trail/"}},
		// [MQTT-4.7.2-1] a filter starting with a wildcard does not match $ topics.
		{"#", []string{"/lead", "a", "a/b", "a/b/c", "a/c", "b", "trail/"}},
		{"+/x", nil},
		{"+/+/load", nil},
		{"$SYS/#", []string{"$SYS/broker/load", "$SYS/x"}},
		{"$SYS/+", []string{"$SYS/x"}},
		{"$SYS/x", []string{"$SYS/x"}},
		{"$SYS/+/load", []string{"$SYS/broker/load"}},
	}
	for _, c := range cases {
		t.Run(c.filter, func(t *testing.T) {
			var want []string
			for _, topic := range c.want {
				want = append(want, topic+"=v")
			}
			slices.Sort(want)
			if got := matchAll(t, r, c.filter); !slices.Equal(got, want) {
				t.Fatalf("Match(%q) = %q, want %q", c.filter, got, want)
			}
		})
	}
	if n := r.Len(); n != 9 {
		t.Fatalf("Len() = %d, want 9", n)
	}
}

func TestMemoryRetainedSet(t *testing.T) {
	type step struct {
		topic, payload string // payload "" clears
		wantLen        int
		wantAll        []string // Match("#") after the step
	}
	cases := []struct {
		name  string
		steps []step
	}{
		{"set", []step{
			{"a/b", "1", 1, []string{"a/b=1"}},
			{"a/c", "2", 2, []string{"a/b=1", "a/c=2"}},
		}},
		{"replace", []step{
			{"a/b", "1", 1, []string{"a/b=1"}},
			{"a/b", "2", 1, []string{"a/b=2"}},
		}},
		{"clear with an empty payload", []step{
			{"a/b", "1", 1, []string{"a/b=1"}},
			{"a/c", "2", 2, []string{"a/b=1", "a/c=2"}},
			{"a/b", "", 1, []string{"a/c=2"}},
		}},
		{"clear an absent topic", []step{
			{"a/b", "1", 1, []string{"a/b=1"}},
			{"x", "", 1, []string{"a/b=1"}},
			{"a", "", 1, []string{"a/b=1"}}, // a parent level of a stored topic
		}},
		{"set again after clear", []step{
			{"a/b", "1", 1, []string{"a/b=1"}},
			{"a/b", "", 0, nil},
			{"a/b", "3", 1, []string{"a/b=3"}},
		}},
		{"clear a parent keeps the child", []step{
			{"a", "1", 1, []string{"a=1"}},
			{"a/b", "2", 2, []string{"a/b=2", "a=1"}},
			{"a", "", 1, []string{"a/b=2"}},
			{"a/b", "", 0, nil},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := session.NewMemoryRetained()
			for i, st := range c.steps {
				if _, err := r.Set(retainedMsg(st.topic, st.payload)); err != nil {
					t.Fatalf("step %d: Set: %v", i, err)
				}
				if n := r.Len(); n != st.wantLen {
					t.Fatalf("step %d (%s=%q): Len() = %d, want %d", i, st.topic, st.payload, n, st.wantLen)
				}
				slices.Sort(st.wantAll)
				if got := matchAll(t, r, "#"); !slices.Equal(got, st.wantAll) {
					t.Fatalf("step %d (%s=%q): Match(#) = %q, want %q", i, st.topic, st.payload, got, st.wantAll)
				}
			}
		})
	}
}

func TestMemoryRetainedMatchStops(t *testing.T) {
	r := session.NewMemoryRetained()
	for i := range 5 {
		_, _ = r.Set(retainedMsg(fmt.Sprint("t/", i), "v")) // MemoryRetained.Set never fails
	}
	calls := 0
	if err := r.Match("t/+", func(*session.Message) bool { calls++; return false }); err != nil {
		t.Fatal(err)
	}
	if calls != 1 {
		t.Fatalf("fn called %d times after returning false, want 1", calls)
	}
}

// TestMemoryRetainedConcurrent sets, clears and matches from several goroutines (run
// with -race). Match's fn calls back into the store: Match must not hold its lock
// while calling fn.
func TestMemoryRetainedConcurrent(t *testing.T) {
	r := session.NewMemoryRetained()
	const writers, topics = 4, 50
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range topics {
				topic := fmt.Sprintf("w%d/%d", w, i)
				_, _ = r.Set(retainedMsg(topic, "v"))
				if i%2 == 1 {
					_, _ = r.Set(retainedMsg(topic, ""))
				}
			}
		})
		wg.Go(func() {
			for range topics {
				_ = r.Match("#", func(m *session.Message) bool {
					_ = r.Len()
					return len(m.Payload) > 0
				})
			}
		})
	}
	wg.Wait()
	if n := r.Len(); n != writers*topics/2 {
		t.Fatalf("Len() = %d, want %d", n, writers*topics/2)
	}
	if got := matchAll(t, r, "+/+"); len(got) != writers*topics/2 {
		t.Fatalf("Match(+/+) found %d, want %d", len(got), writers*topics/2)
	}
}

// TestRetainedLastWriterWins: across a cluster, a retained write with an older stamp
// (arriving late from another node) does not replace a newer one; unstamped writes
// (a standalone node) always replace.
func TestRetainedLastWriterWins(t *testing.T) {
	r := session.NewMemoryRetained()
	set := func(payload string, stamp int64) error {
		_, err := r.Set(&session.Message{Topic: "t", Payload: []byte(payload), Retain: true, Stamp: stamp})
		return err
	}
	get := func() string {
		var got string
		_ = r.Match("t", func(m *session.Message) bool { got = string(m.Payload); return true })
		return got
	}
	if err := set("new", 20); err != nil {
		t.Fatal(err)
	}
	if err := set("old", 10); !session.IsOlder(err) {
		t.Fatalf("older write: err %v, want IsOlder", err)
	}
	if got := get(); got != "new" {
		t.Fatalf("after an older write: %q, want new", got)
	}
	if err := set("newer", 30); err != nil || get() != "newer" {
		t.Fatalf("newer write: err %v, stored %q", err, get())
	}
	if err := set("unstamped", 0); err != nil || get() != "unstamped" {
		t.Fatalf("unstamped write: err %v, stored %q", err, get())
	}
}
