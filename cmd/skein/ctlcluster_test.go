package main

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/skein-mq/skein/cluster"
	"github.com/skein-mq/skein/cluster/clustertest"
)

// TestCtlCluster runs `skein ctl cluster` against the admin API of a node of a real
// three-node cluster: it shows every member alive and a voter, and the leader.
func TestCtlCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test: skipped with -short")
	}
	nodes := clustertest.Start(t, 3)
	leader := clustertest.WaitLeader(t, nodes)
	clustertest.Eventually(t, "three voters", func() bool {
		n := 0
		for _, m := range nodes[0].Cluster.Status().Members {
			if m.State == "alive" && m.Suffrage == "voter" {
				n++
			}
		}
		return n == 3
	})
	h, err := healthHandler(func() bool { return true }, nodes[0].Broker, nodes[0].Cluster, &serveOptions{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	run := func(args ...string) string {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs(append([]string{"ctl", "--url", srv.URL}, args...))
		if err := root.Execute(); err != nil {
			t.Fatalf("skein ctl %v: %v\n%s", args, err, out.String())
		}
		return out.String()
	}
	table := run("cluster")
	for _, n := range []string{"n1", "n2", "n3"} {
		if !strings.Contains(table, n) {
			t.Errorf("ctl cluster output lacks member %s:\n%s", n, table)
		}
	}
	if !strings.Contains(table, "leader "+leader) || !strings.Contains(table, leader+"*") {
		t.Errorf("ctl cluster does not show leader %s:\n%s", leader, table)
	}
	if c := strings.Count(table, "voter"); c < 3 {
		t.Errorf("ctl cluster shows %d voters, want 3:\n%s", c, table)
	}
	var st cluster.Status
	if err := json.Unmarshal([]byte(run("cluster", "--json")), &st); err != nil {
		t.Fatalf("ctl cluster --json: %v", err)
	}
	if st.Node != "n1" || len(st.Members) != 3 || st.Leader != leader {
		t.Fatalf("ctl cluster --json = %+v", st)
	}
}

// TestCtlClusterHeld: the messages a node holds for others are listed below the
// members, and not at all when it holds none.
func TestCtlClusterHeld(t *testing.T) {
	st := cluster.Status{Node: "n1", Leader: "n1", RaftState: "Leader",
		Members: []cluster.MemberStatus{{Name: "n1", State: "alive"}, {Name: "n3", State: "dead"}},
		Held:    []cluster.HeldStatus{{Node: "n3", Messages: 7, Bytes: 700, Spooled: 9, Dropped: 2, Timeouts: 1}}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = json.NewEncoder(w).Encode(st) // the test reads what arrived
	}))
	defer srv.Close()
	run := func() string {
		root := newRootCmd()
		var out bytes.Buffer
		root.SetOut(&out)
		root.SetErr(&out)
		root.SetArgs([]string{"ctl", "--url", srv.URL, "cluster"})
		if err := root.Execute(); err != nil {
			t.Fatalf("skein ctl cluster: %v\n%s", err, out.String())
		}
		return out.String()
	}
	out := run()
	var row string
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "n3 ") && strings.Contains(l, "700") {
			row = l
		}
	}
	if !strings.Contains(out, "HELD FOR") || strings.Join(strings.Fields(row), " ") != "n3 7 700 9 2 0 1 0" {
		t.Fatalf("ctl cluster does not list what is held for n3:\n%s", out)
	}
	st.Held = nil
	if out := run(); strings.Contains(out, "HELD FOR") {
		t.Fatalf("ctl cluster lists held messages when there are none:\n%s", out)
	}
}
