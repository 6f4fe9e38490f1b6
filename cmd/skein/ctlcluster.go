package main

import (
	"fmt"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/skein-mq/skein/cluster"
)

// ctlClusterCmd is `skein ctl cluster`: members, their state, the Raft leader,
// voters, and route counts per node, from GET /api/v1/cluster.
func ctlClusterCmd(o *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster: members, leader, voters and routes per node",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var st cluster.Status
			if ok, err := c.get(cmd.Context(), "/cluster", nil, &st); !ok {
				return err
			}
			fmt.Fprintf(c.out, "node %s, leader %s, raft %s, term %d, commit %d, applied %d, routes %d, pending route changes %d\n",
				st.Node, orDash(st.Leader), st.RaftState, st.Term, st.CommitIndex, st.AppliedIndex, st.Routes, st.PendingRouteChanges)
			rows := make([][]string, 0, len(st.Members))
			for _, m := range st.Members {
				leader := ""
				if m.Name == st.Leader {
					leader = "*"
				}
				rows = append(rows, []string{m.Name + leader, m.State, m.Suffrage, m.PeerAddr, strconv.Itoa(m.Routes),
					strconv.FormatUint(m.Forwarded, 10), strconv.FormatUint(m.Received, 10)})
			}
			if st.LastContact > 0 {
				fmt.Fprintf(c.out, "last contact with the leader %v ago\n", st.LastContact.Round(time.Millisecond))
			}
			if err := c.table([]string{"MEMBER", "STATE", "RAFT", "PEER ADDR", "ROUTES", "FORWARDED TO", "RECEIVED FROM"}, rows); err != nil {
				return err
			}
			if len(st.Held) == 0 {
				return nil
			}
			// Messages held on disk for nodes that are down or did not accept them
			// in time, and what became of those it could not take.
			fmt.Fprintln(c.out)
			rows = rows[:0]
			for _, h := range st.Held {
				rows = append(rows, []string{h.Node, strconv.Itoa(h.Messages), strconv.FormatInt(h.Bytes, 10), strconv.FormatUint(h.Spooled, 10),
					strconv.FormatUint(h.Dropped, 10), strconv.FormatUint(h.Purged, 10), strconv.FormatUint(h.Timeouts, 10), strconv.FormatUint(h.DiscardedQoS0, 10)})
			}
			return c.table([]string{"HELD FOR", "MESSAGES", "BYTES", "SPOOLED", "DROPPED (FULL)", "PURGED", "FORWARD TIMEOUTS", "QOS 0 DISCARDED"}, rows)
		},
	}
}
