package route

import (
	"fmt"
	"testing"
)

const benchFilters = 100_000

// benchFilter returns the i-th of benchFilters filters shaped like device telemetry
// subscriptions. plus and hash pick the wildcards: every 10th filter has a `+` in one of
// three positions when plus is set, every 10th (offset by 5) ends in `#` when hash is set.
func benchFilter(i int, plus, hash bool) string {
	site, dev := i/1000, i%1000
	switch {
	case plus && i%10 == 0:
		switch (i / 10) % 3 {
		case 0:
			return fmt.Sprintf("site/%d/dev/+/temp", site)
		case 1:
			return fmt.Sprintf("site/+/dev/%d/temp", dev)
		default:
			return fmt.Sprintf("site/%d/+/%d/temp", site, dev)
		}
	case hash && i%10 == 5:
		if (i/10)%2 == 0 {
			return fmt.Sprintf("site/%d/dev/%d/#", site, dev)
		}
		return fmt.Sprintf("site/%d/#", site)
	}
	return fmt.Sprintf("site/%d/dev/%d/temp", site, dev)
}

func BenchmarkMatch(b *testing.B) {
	tests := []struct {
		name       string
		plus, hash bool
		extra      []string // added on top of the 100k
		topic      string
	}{
		{"literal", false, false, nil, "site/42/dev/123/temp"},
		{"plus", true, false, nil, "site/42/dev/120/temp"},
		{"hash", false, true, nil, "site/42/dev/125/temp"},
		{"100k_mixed", true, true, []string{"#", "+/+/+/+/+", "site/+/dev/+/temp", "$SYS/#"}, "site/42/dev/120/temp"},
	}
	for _, tc := range tests {
		b.Run(tc.name, func(b *testing.B) {
			tr := NewTrie[int, struct{}]()
			want := 0 // found by brute force, so the benchmark measures real work
			for i := range benchFilters + len(tc.extra) {
				f := ""
				if i < benchFilters {
					f = benchFilter(i, tc.plus, tc.hash)
				} else {
					f = tc.extra[i-benchFilters]
				}
				tr.Add(f, i, struct{}{})
				if refMatch(f, tc.topic) {
					want++
				}
			}
			n := 0
			tr.Match(tc.topic, func(string, int, struct{}) bool { n++; return true })
			if n != want {
				b.Fatalf("Match(%q) found %d, want %d", tc.topic, n, want)
			}
			b.ReportAllocs()
			for b.Loop() {
				tr.Match(tc.topic, func(string, int, struct{}) bool { n++; return true })
			}
			// After the loop: b.Loop resets metrics reported before it.
			b.ReportMetric(float64(want), "matches/op")
		})
	}
}

func BenchmarkAdd(b *testing.B) {
	filters := make([]string, benchFilters)
	for i := range filters {
		filters[i] = benchFilter(i, true, true)
	}
	tr := NewTrie[int, struct{}]()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(filters) {
			// Start over so every Add is a new (filter, key) in a trie of up to 100k.
			b.StopTimer()
			tr, i = NewTrie[int, struct{}](), 0
			b.StartTimer()
		}
		tr.Add(filters[i], i, struct{}{})
		i++
	}
}

func BenchmarkRemove(b *testing.B) {
	filters := make([]string, benchFilters)
	for i := range filters {
		filters[i] = benchFilter(i, true, true)
	}
	fill := func() *Trie[int, struct{}] {
		tr := NewTrie[int, struct{}]()
		for i, f := range filters {
			tr.Add(f, i, struct{}{})
		}
		return tr
	}
	tr := fill()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if i == len(filters) {
			// Refill so every Remove finds its (filter, key).
			b.StopTimer()
			tr, i = fill(), 0
			b.StartTimer()
		}
		tr.Remove(filters[i], i)
		i++
	}
}
