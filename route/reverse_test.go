package route

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestMatchFilter(t *testing.T) {
	names := []string{"a", "a/b", "a/b/c", "a//c", "/a", "$SYS/x", "$SYS/x/y", "b", ""}
	tr := NewTrie[string, struct{}]()
	for _, n := range names {
		if n != "" {
			tr.Add(n, n, struct{}{})
		}
	}
	cases := []struct {
		filter string
		want   []string
	}{
		{"a", []string{"a"}},
		{"a/#", []string{"a", "a/b", "a/b/c", "a//c"}},
		{"#", []string{"a", "a/b", "a/b/c", "a//c", "/a", "b"}},
		{"+", []string{"a", "b"}},
		{"+/+", []string{"a/b", "/a"}},
		{"a/+/c", []string{"a/b/c", "a//c"}},
		{"$SYS/#", []string{"$SYS/x", "$SYS/x/y"}},
		{"+/x", nil},
		{"$SYS/+", []string{"$SYS/x"}},
		{"nope/#", nil},
	}
	for _, c := range cases {
		t.Run(c.filter, func(t *testing.T) {
			var got []string
			tr.MatchFilter(c.filter, func(n string) bool { got = append(got, n); return true })
			slices.Sort(got)
			want := slices.Clone(c.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("MatchFilter(%q) = %q, want %q", c.filter, got, want)
			}
		})
	}
}

// TestMatchFilterAgreesWithMatch checks the reverse matcher against the forward one:
// name n is reported for filter f exactly when f stored as a filter matches topic n.
func TestMatchFilterAgreesWithMatch(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	levels := []string{"", "a", "b", "$SYS"}
	var names []string
	tr := NewTrie[string, struct{}]()
	for range 300 {
		n := randomLevels(rng, levels, false)
		names = append(names, n)
		tr.Add(n, n, struct{}{})
	}
	for range 500 {
		f := randomLevels(rng, append(levels, "+", "#"), true)
		fwd := NewTrie[int, struct{}]()
		fwd.Add(f, 0, struct{}{})
		want := map[string]bool{}
		for _, n := range names {
			fwd.Match(n, func(string, int, struct{}) bool { want[n] = true; return true })
		}
		got := map[string]bool{}
		tr.MatchFilter(f, func(n string) bool {
			if got[n] {
				t.Fatalf("filter %q: %q reported twice", f, n)
			}
			got[n] = true
			return true
		})
		if len(got) != len(want) {
			t.Fatalf("filter %q: got %v, want %v", f, got, want)
		}
		for n := range want {
			if !got[n] {
				t.Fatalf("filter %q: missing %q", f, n)
			}
		}
	}
}

func randomLevels(rng *rand.Rand, levels []string, filter bool) string {
	n := 1 + rng.IntN(4)
	s := ""
	for i := range n {
		l := levels[rng.IntN(len(levels))]
		if l == "#" && i != n-1 {
			l = "+"
		}
		if l == "$SYS" && i != 0 {
			l = "a"
		}
		if i > 0 {
			s += "/"
		}
		s += l
	}
	if s == "" && !filter {
		return "x"
	}
	return s
}
