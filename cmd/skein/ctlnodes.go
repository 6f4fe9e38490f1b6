package main

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/skein-mq/skein/node/admin"
)

// The verbs about the nodes and the broker as a whole: nodes, stats, routes.

func ctlNodesCmd(o *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "nodes",
		Short: "Show the nodes",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var page admin.Page[admin.Node]
			if ok, err := c.get(cmd.Context(), "/nodes", nil, &page); !ok {
				return err
			}
			rows := make([][]string, 0, len(page.Data))
			for _, n := range page.Data {
				rows = append(rows, []string{n.Name, n.Version, (time.Duration(n.UptimeSeconds) * time.Second).String(),
					itoa64(n.Connections), strconv.Itoa(n.Sessions), strconv.Itoa(n.Subscriptions), strconv.Itoa(n.Retained)})
			}
			return c.table([]string{"NAME", "VERSION", "UPTIME", "CONNECTIONS", "SESSIONS", "SUBSCRIPTIONS", "RETAINED"}, rows)
		},
	}
}

func itoa64(n int64) string { return strconv.FormatInt(n, 10) }

func ctlStatsCmd(o *ctlOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "stats",
		Short: "Show the node's counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			// Decoded generically, so counters the API adds show without a ctl change.
			var stats map[string]any
			if ok, err := c.get(cmd.Context(), "/stats", nil, &stats); !ok {
				return err
			}
			flat := map[string]string{}
			flatten("", stats, flat)
			keys := make([]string, 0, len(flat))
			for k := range flat {
				keys = append(keys, k)
			}
			slices.Sort(keys)
			rows := make([][]string, 0, len(keys))
			for _, k := range keys {
				rows = append(rows, []string{k, flat[k]})
			}
			return c.table([]string{"COUNTER", "VALUE"}, rows)
		},
	}
}

// flatten turns nested JSON objects into dotted keys.
func flatten(prefix string, v any, out map[string]string) {
	switch v := v.(type) {
	case map[string]any:
		for k, sub := range v {
			if prefix != "" {
				k = prefix + "." + k
			}
			flatten(k, sub, out)
		}
	case float64:
		out[prefix] = strconv.FormatFloat(v, 'f', -1, 64)
	case nil:
		out[prefix] = "-"
	default:
		out[prefix] = fmt.Sprint(v)
	}
}

func ctlRoutesCmd(o *ctlOptions) *cobra.Command {
	var pf pageFlags
	var topic string
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "List the routes: topic filters and the nodes subscribed to them",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			q := pf.query()
			setIf(q, "topic", topic)
			var page admin.Page[admin.Route]
			if ok, err := c.get(cmd.Context(), "/routes", q, &page); !ok {
				return err
			}
			rows := make([][]string, 0, len(page.Data))
			for _, r := range page.Data {
				rows = append(rows, []string{r.Topic, strconv.Itoa(r.Subscribers), strings.Join(r.Nodes, ",")})
			}
			if err := c.table([]string{"TOPIC", "SUBSCRIBERS", "NODES"}, rows); err != nil {
				return err
			}
			return c.footer("routes", page.Meta, len(page.Data))
		},
	}
	pf.add(cmd)
	cmd.Flags().StringVar(&topic, "topic", "", "only the route of exactly this filter")
	return cmd
}
