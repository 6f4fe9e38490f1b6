package route

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// matched returns the filters Match reports for topic, sorted, one entry per report.
func matched[K comparable, V any](tr *Trie[K, V], topic string) []string {
	var got []string
	tr.Match(topic, func(filter string, _ K, _ V) bool {
		got = append(got, filter)
		return true
	})
	slices.Sort(got)
	return got
}

// countNodes returns the number of nodes below and including n.
func countNodes[K comparable, V any](n *node[K, V]) int {
	c := 1
	for _, ch := range n.children {
		c += countNodes(ch)
	}
	if n.plus != nil {
		c += countNodes(n.plus)
	}
	if n.hash != nil {
		c += countNodes(n.hash)
	}
	return c
}

func TestMatch(t *testing.T) {
	tests := []struct {
		name    string
		filters []string
		topic   string
		want    []string // filters expected to match; nil for none
	}{
		{"literal", []string{"a/b/c", "a/b", "a/b/c/d", "a/x/c"}, "a/b/c", []string{"a/b/c"}},
		{"literal single level", []string{"a", "b", "a/b"}, "a", []string{"a"}},
		{"literal is case sensitive", []string{"ACCOUNTS"}, "Accounts", nil},
		{"plus first level", []string{"+/b/c"}, "a/b/c", []string{"+/b/c"}},
		{"plus middle level", []string{"a/+/c"}, "a/b/c", []string{"a/+/c"}},
		{"plus last level", []string{"a/b/+"}, "a/b/c", []string{"a/b/+"}},
		{"plus every level", []string{"+/+/+"}, "a/b/c", []string{"+/+/+"}},
		{"plus is one level only", []string{"a/+"}, "a/b/c", nil},
		{"plus needs the level", []string{"a/b/+"}, "a/b", nil},
		{"hash at root", []string{"#"}, "a/b/c", []string{"#"}},
		{"hash nested", []string{"a/#", "a/b/#", "b/#"}, "a/b/c", []string{"a/#", "a/b/#"}},
		{"hash after plus", []string{"+/b/#"}, "a/b/c/d", []string{"+/b/#"}},
		{"hash matches parent level", []string{"sport/#"}, "sport", []string{"sport/#"}},
		{"hash matches empty child level", []string{"sport/#"}, "sport/", []string{"sport/#"}},
		{"hash matches deep levels", []string{"sport/#"}, "sport/tennis/x", []string{"sport/#"}},
		{"hash does not match sibling prefix", []string{"sport/#"}, "sports", nil},
		{"empty middle level literal", []string{"a//b", "a/b"}, "a//b", []string{"a//b"}},
		{"plus matches empty middle level", []string{"a/+/b"}, "a//b", []string{"a/+/b"}},
		{"empty middle level is a level", []string{"a/+/b"}, "a/b", nil},
		{"trailing empty level is distinct", []string{"a", "a/"}, "a/", []string{"a/"}},
		{"leading empty level is distinct", []string{"a", "/a"}, "/a", []string{"/a"}},
		{"plus matches empty level", []string{"a/+"}, "a/", []string{"a/+"}},
		{"multiple matching filters", []string{"a/b", "a/+", "+/b", "+/+", "#", "a/#", "a/b/#"}, "a/b",
			[]string{"#", "+/+", "+/b", "a/#", "a/+", "a/b", "a/b/#"}},

		// Examples of MQTT 5.0 section 4.7.1.2 (multi-level wildcard).
		{"4.7.1.2 player1", []string{"sport/tennis/player1/#"}, "sport/tennis/player1", []string{"sport/tennis/player1/#"}},
		{"4.7.1.2 player1 ranking", []string{"sport/tennis/player1/#"}, "sport/tennis/player1/ranking", []string{"sport/tennis/player1/#"}},
		{"4.7.1.2 player1 score wimbledon", []string{"sport/tennis/player1/#"}, "sport/tennis/player1/score/wimbledon", []string{"sport/tennis/player1/#"}},
		{"4.7.1.2 sport/# matches sport", []string{"sport/#"}, "sport", []string{"sport/#"}},

		// Examples of MQTT 5.0 section 4.7.1.3 (single-level wildcard).
		{"4.7.1.3 player1", []string{"sport/tennis/+"}, "sport/tennis/player1", []string{"sport/tennis/+"}},
		{"4.7.1.3 player2", []string{"sport/tennis/+"}, "sport/tennis/player2", []string{"sport/tennis/+"}},
		{"4.7.1.3 not player1 ranking", []string{"sport/tennis/+"}, "sport/tennis/player1/ranking", nil},
		{"4.7.1.3 sport/+ not sport", []string{"sport/+"}, "sport", nil},
		{"4.7.1.3 sport/+ matches sport/", []string{"sport/+"}, "sport/", []string{"sport/+"}},
		{"4.7.1.3 +/+ matches /finance", []string{"+/+"}, "/finance", []string{"+/+"}},
		{"4.7.1.3 /+ matches /finance", []string{"/+"}, "/finance", []string{"/+"}},
		{"4.7.1.3 + not /finance", []string{"+"}, "/finance", nil},

		// [MQTT-4.7.2-1] and the examples of MQTT 5.0 section 4.7.2.
		{"dollar hash does not match", []string{"#"}, "$SYS/broker/uptime", nil},
		{"dollar plus first does not match", []string{"+/broker/uptime"}, "$SYS/broker/uptime", nil},
		{"dollar plus single level does not match", []string{"+"}, "$SYS", nil},
		{"dollar plus then literal does not match", []string{"+/x"}, "$SYS/x", nil},
		{"dollar plus then hash does not match", []string{"+/#"}, "$SYS/x", nil},
		{"dollar SYS hash matches", []string{"$SYS/#"}, "$SYS/broker/uptime", []string{"$SYS/#"}},
		{"dollar SYS hash matches parent", []string{"$SYS/#"}, "$SYS", []string{"$SYS/#"}},
		{"dollar SYS plus matches", []string{"$SYS/+/x"}, "$SYS/a/x", []string{"$SYS/+/x"}},
		{"dollar 4.7.2 monitor clients", []string{"+/monitor/Clients", "$SYS/monitor/+"}, "$SYS/monitor/Clients", []string{"$SYS/monitor/+"}},
		{"dollar mixed filters", []string{"#", "+/x", "$SYS/#", "$SYS/+", "$SYS/x"}, "$SYS/x",
			[]string{"$SYS/#", "$SYS/+", "$SYS/x"}},
		{"dollar later level is ordinary", []string{"#", "a/+", "+/$SYS"}, "a/$SYS", []string{"#", "+/$SYS", "a/+"}},
		{"dollar rule needs dollar first", []string{"#", "+/b"}, "/b", []string{"#", "+/b"}},
		{"share prefix is literal", []string{"$share/g/a/b", "+/g/a/b"}, "$share/g/a/b", []string{"$share/g/a/b"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTrie[string, int]()
			for _, f := range tc.filters {
				tr.Add(f, "c1", 1)
			}
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if got := matched(tr, tc.topic); !slices.Equal(got, want) {
				t.Errorf("Match(%q) over %q = %q, want %q", tc.topic, tc.filters, got, want)
			}
		})
	}
}

func TestMatchReportsEachKeyPerFilter(t *testing.T) {
	tests := []struct {
		name string
		subs [][2]string // (filter, key)
		want []string    // "filter key", sorted
	}{
		{"one key two filters", [][2]string{{"a/+", "c1"}, {"a/b", "c1"}}, []string{"a/+ c1", "a/b c1"}},
		{"two keys one filter", [][2]string{{"a/b", "c1"}, {"a/b", "c2"}}, []string{"a/b c1", "a/b c2"}},
		{"same key added twice", [][2]string{{"a/#", "c1"}, {"a/#", "c1"}}, []string{"a/# c1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTrie[string, int]()
			for _, s := range tc.subs {
				tr.Add(s[0], s[1], 0)
			}
			var got []string
			tr.Match("a/b", func(filter, key string, _ int) bool {
				got = append(got, filter+" "+key)
				return true
			})
			slices.Sort(got)
			if !slices.Equal(got, tc.want) {
				t.Errorf("Match = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestAddRemove(t *testing.T) {
	type step struct {
		op          string // "add" or "remove"
		filter, key string
		val         int
		first       bool // add: want firstForFilter
		removed     bool // remove: want removed
		empty       bool // remove: want filterEmpty
	}
	tests := []struct {
		name             string
		steps            []step
		filters, entries int
	}{
		{"first key is first", []step{
			{op: "add", filter: "a/b", key: "c1", first: true},
		}, 1, 1},
		{"second key is not first", []step{
			{op: "add", filter: "a/b", key: "c1", first: true},
			{op: "add", filter: "a/b", key: "c2", first: false},
		}, 1, 2},
		{"replacing a value is not first and does not duplicate", []step{
			{op: "add", filter: "a/b", key: "c1", val: 1, first: true},
			{op: "add", filter: "a/b", key: "c1", val: 2, first: false},
		}, 1, 1},
		{"other filter is first", []step{
			{op: "add", filter: "a/b", key: "c1", first: true},
			{op: "add", filter: "a/+", key: "c1", first: true},
			{op: "add", filter: "a/#", key: "c1", first: true},
			{op: "add", filter: "a", key: "c1", first: true},
		}, 4, 4},
		{"remove not last key", []step{
			{op: "add", filter: "a/b", key: "c1", first: true},
			{op: "add", filter: "a/b", key: "c2"},
			{op: "remove", filter: "a/b", key: "c1", removed: true, empty: false},
		}, 1, 1},
		{"remove last key", []step{
			{op: "add", filter: "a/b", key: "c1", first: true},
			{op: "add", filter: "a/b", key: "c2"},
			{op: "remove", filter: "a/b", key: "c1", removed: true},
			{op: "remove", filter: "a/b", key: "c2", removed: true, empty: true},
		}, 0, 0},
		{"remove absent key", []step{
			{op: "add", filter: "a/b", key: "c1", first: true},
			{op: "remove", filter: "a/b", key: "c2", removed: false, empty: false},
		}, 1, 1},
		{"remove absent filter", []step{
			{op: "add", filter: "a/b", key: "c1", first: true},
			{op: "remove", filter: "a/c", key: "c1", removed: false, empty: true},
			{op: "remove", filter: "a", key: "c1", removed: false, empty: true},
		}, 1, 1},
		{"remove twice", []step{
			{op: "add", filter: "a/#", key: "c1", first: true},
			{op: "remove", filter: "a/#", key: "c1", removed: true, empty: true},
			{op: "remove", filter: "a/#", key: "c1", removed: false, empty: true},
		}, 0, 0},
		{"add after last removed is first again", []step{
			{op: "add", filter: "+/b", key: "c1", first: true},
			{op: "remove", filter: "+/b", key: "c1", removed: true, empty: true},
			{op: "add", filter: "+/b", key: "c2", first: true},
		}, 1, 1},
		{"removing a prefix filter keeps the longer one", []step{
			{op: "add", filter: "a", key: "c1", first: true},
			{op: "add", filter: "a/b", key: "c1", first: true},
			{op: "remove", filter: "a", key: "c1", removed: true, empty: true},
		}, 1, 1},
		{"removing a longer filter keeps the prefix", []step{
			{op: "add", filter: "a", key: "c1", first: true},
			{op: "add", filter: "a/b/c", key: "c1", first: true},
			{op: "remove", filter: "a/b/c", key: "c1", removed: true, empty: true},
		}, 1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTrie[string, int]()
			for i, s := range tc.steps {
				switch s.op {
				case "add":
					if first := tr.Add(s.filter, s.key, s.val); first != s.first {
						t.Errorf("step %d: Add(%q, %q) first = %v, want %v", i, s.filter, s.key, first, s.first)
					}
					if v, ok := tr.Get(s.filter, s.key); !ok || v != s.val {
						t.Errorf("step %d: Get(%q, %q) = %v, %v, want %v, true", i, s.filter, s.key, v, ok, s.val)
					}
				case "remove":
					removed, empty := tr.Remove(s.filter, s.key)
					if removed != s.removed || empty != s.empty {
						t.Errorf("step %d: Remove(%q, %q) = %v, %v, want %v, %v",
							i, s.filter, s.key, removed, empty, s.removed, s.empty)
					}
					if _, ok := tr.Get(s.filter, s.key); ok {
						t.Errorf("step %d: Get(%q, %q) found a removed key", i, s.filter, s.key)
					}
				}
			}
			if got := tr.Filters(); got != tc.filters {
				t.Errorf("Filters() = %d, want %d", got, tc.filters)
			}
			if got := tr.Len(); got != tc.entries {
				t.Errorf("Len() = %d, want %d", got, tc.entries)
			}
			walked := 0
			tr.Walk(func(string, string, int) bool { walked++; return true })
			if walked != tc.entries {
				t.Errorf("Walk visited %d entries, want %d", walked, tc.entries)
			}
		})
	}
}

func TestGet(t *testing.T) {
	tr := NewTrie[string, int]()
	tr.Add("a/+/c", "c1", 7)
	tr.Add("a/+/c", "c1", 8)
	tests := []struct {
		name, filter, key string
		want              int
		ok                bool
	}{
		{"present has latest value", "a/+/c", "c1", 8, true},
		{"other key", "a/+/c", "c2", 0, false},
		{"prefix node without keys", "a/+", "c1", 0, false},
		{"absent filter", "a/b/c", "c1", 0, false},
		{"wildcard is not a literal", "a/b/c", "c1", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := tr.Get(tc.filter, tc.key)
			if got != tc.want || ok != tc.ok {
				t.Errorf("Get(%q, %q) = %d, %v, want %d, %v", tc.filter, tc.key, got, ok, tc.want, tc.ok)
			}
		})
	}
}

func TestPrune(t *testing.T) {
	const n = 10_000
	tr := NewTrie[int, struct{}]()
	shapes := []string{"p/%d", "p/%d/x/y", "+/%d/#", "%d", "/%d//", "q/+/%d/+", "$SYS/%d/#"}
	filters := make([]string, n)
	for i := range filters {
		filters[i] = fmt.Sprintf(shapes[i%len(shapes)], i)
		tr.Add(filters[i], i%3, struct{}{})
		tr.Add(filters[i], i%3+1, struct{}{})
	}
	if got := tr.Filters(); got != n {
		t.Fatalf("Filters() = %d after adding, want %d", got, n)
	}
	for i, f := range filters {
		for _, k := range []int{i%3 + 1, i % 3} {
			if removed, _ := tr.Remove(f, k); !removed {
				t.Fatalf("Remove(%q, %d) removed nothing", f, k)
			}
		}
	}
	if got := tr.Filters(); got != 0 {
		t.Errorf("Filters() = %d after removing all, want 0", got)
	}
	if got := tr.Len(); got != 0 {
		t.Errorf("Len() = %d after removing all, want 0", got)
	}
	if got := countNodes(tr.root); got != 1 {
		t.Errorf("trie has %d nodes after removing all, want only the root", got)
	}
	if r := tr.root; r.children != nil || r.plus != nil || r.hash != nil {
		t.Errorf("root still has children: %v plus=%v hash=%v", r.children, r.plus, r.hash)
	}
}

func TestMatchStops(t *testing.T) {
	tests := []struct {
		name    string
		filters []string
		keys    int
		stopAt  int
	}{
		{"first of many keys", []string{"a/b"}, 10, 1},
		{"within one filter", []string{"a/b"}, 10, 5},
		{"at hash filter", []string{"#", "a/#", "a/+", "a/b", "+/b", "+/+"}, 1, 1},
		{"across filters", []string{"#", "a/#", "a/+", "a/b", "+/b", "+/+"}, 3, 8},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := NewTrie[int, int]()
			for _, f := range tc.filters {
				for k := range tc.keys {
					tr.Add(f, k, k)
				}
			}
			calls := 0
			tr.Match("a/b", func(string, int, int) bool {
				calls++
				return calls < tc.stopAt
			})
			if calls != tc.stopAt {
				t.Errorf("fn called %d times, want %d", calls, tc.stopAt)
			}
		})
	}
}

func TestWalkStops(t *testing.T) {
	tr := NewTrie[int, int]()
	for i := range 10 {
		tr.Add(fmt.Sprintf("a/%d", i), i, i)
	}
	calls := 0
	tr.Walk(func(string, int, int) bool {
		calls++
		return calls < 3
	})
	if calls != 3 {
		t.Errorf("fn called %d times, want 3", calls)
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tr := NewTrie[string, int]()
	for _, f := range []string{"a/b/c", "a/+/c", "a/#", "#", "+/+/+", "$SYS/#"} {
		tr.Add(f, "c1", 1)
		tr.Add(f, "c2", 2)
	}
	for _, topic := range []string{"a/b/c", "$SYS/x", "x//y", "a"} {
		t.Run(topic, func(t *testing.T) {
			n := 0
			allocs := testing.AllocsPerRun(100, func() {
				// A fresh closure per call, as the broker would write it.
				tr.Match(topic, func(_ string, _ string, v int) bool {
					n += v
					return true
				})
			})
			if allocs != 0 {
				t.Errorf("Match(%q) allocates %v times per call, want 0", topic, allocs)
			}
		})
	}
}

// refMatch is the reference matcher: it compares filter and topic level by level, as
// MQTT 5.0 section 4.7 describes, with no shared code with the trie.
func refMatch(filter, topic string) bool {
	// [MQTT-4.7.2-1]
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	fl := strings.Split(filter, "/")
	tl := strings.Split(topic, "/")
	for i, f := range fl {
		if f == "#" {
			return true // matches the parent and any number of children
		}
		if i >= len(tl) {
			return false
		}
		if f != "+" && f != tl[i] {
			return false
		}
	}
	return len(fl) == len(tl)
}

func TestMatchRandomAgainstReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	topicLevels := []string{"", "$SYS", "a", "b"}
	filterLevels := []string{"", "$SYS", "a", "b", "+", "#"}

	randomFilter := func() string {
		depth := 1 + rng.IntN(4)
		levels := make([]string, depth)
		for i := range levels {
			l := filterLevels[rng.IntN(len(filterLevels))]
			for l == "#" && i != depth-1 {
				l = filterLevels[rng.IntN(len(filterLevels))]
			}
			levels[i] = l
		}
		return strings.Join(levels, "/")
	}
	randomTopic := func() string {
		depth := 1 + rng.IntN(5)
		levels := make([]string, depth)
		for i := range levels {
			levels[i] = topicLevels[rng.IntN(len(topicLevels))]
		}
		return strings.Join(levels, "/")
	}

	tr := NewTrie[int, string]()
	subs := map[string]map[int]bool{} // filter -> keys
	for range 3000 {
		f, k := randomFilter(), rng.IntN(8)
		tr.Add(f, k, f)
		if subs[f] == nil {
			subs[f] = map[int]bool{}
		}
		subs[f][k] = true
	}
	// Remove some so pruning takes part in what is compared.
	for f, keys := range subs {
		for k := range keys {
			if rng.IntN(4) == 0 {
				if removed, _ := tr.Remove(f, k); !removed {
					t.Fatalf("Remove(%q, %d) removed nothing", f, k)
				}
				delete(keys, k)
			}
		}
		if len(keys) == 0 {
			delete(subs, f)
		}
	}
	if got := tr.Filters(); got != len(subs) {
		t.Fatalf("Filters() = %d, want %d", got, len(subs))
	}

	for range 3000 {
		topic := randomTopic()
		var want []string
		for f, keys := range subs {
			if refMatch(f, topic) {
				for k := range keys {
					want = append(want, fmt.Sprintf("%s %d", f, k))
				}
			}
		}
		var got []string
		tr.Match(topic, func(filter string, key int, val string) bool {
			if val != filter {
				t.Errorf("Match(%q) gave value %q for filter %q", topic, val, filter)
			}
			got = append(got, fmt.Sprintf("%s %d", filter, key))
			return true
		})
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Fatalf("Match(%q) = %q, want %q", topic, got, want)
		}
	}
}

func TestConcurrent(t *testing.T) {
	const (
		workers = 8
		rounds  = 500
	)
	tr := NewTrie[int, int]()
	// A filter every worker keeps, so matchers always have something to find.
	tr.Add("shared/+", -1, -1)

	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range rounds {
				f := fmt.Sprintf("w/%d/+/%d", w, i%50)
				tr.Add(f, w, i)
				tr.Add("shared/#", w, i)
				if i%2 == 1 {
					tr.Remove(f, w)
				}
			}
		})
		wg.Go(func() {
			for i := range rounds {
				found := false
				tr.Match(fmt.Sprintf("shared/%d", i), func(filter string, key, _ int) bool {
					if filter == "shared/+" && key == -1 {
						found = true
					}
					return true
				})
				if !found {
					t.Errorf("Match missed the permanent filter")
					return
				}
				_ = tr.Len() // exercise the read lock alongside writers
			}
		})
	}
	wg.Wait()

	// Each worker leaves the even i%50 filters (odd ones were removed after their add),
	// plus its key under shared/#.
	wantFilters := 1 + 1 + workers*25
	wantEntries := 1 + workers + workers*25
	if got := tr.Filters(); got != wantFilters {
		t.Errorf("Filters() = %d, want %d", got, wantFilters)
	}
	if got := tr.Len(); got != wantEntries {
		t.Errorf("Len() = %d, want %d", got, wantEntries)
	}
	for w := range workers {
		for j := range 50 {
			_, ok := tr.Get(fmt.Sprintf("w/%d/+/%d", w, j), w)
			if want := j%2 == 0; ok != want {
				t.Errorf("Get(w/%d/+/%d, %d) present = %v, want %v", w, j, w, ok, want)
			}
		}
		if v, ok := tr.Get("shared/#", w); !ok || v != rounds-1 {
			t.Errorf("Get(shared/#, %d) = %d, %v, want %d, true", w, v, ok, rounds-1)
		}
	}
}
