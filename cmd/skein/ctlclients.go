package main

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/skein-mq/skein/node/admin"
)

// The verbs about clients and their subscriptions.

func ctlClientsCmd(o *ctlOptions) *cobra.Command {
	var pf pageFlags
	var clientID, like, username, nodeName, connected string
	list := func(cmd *cobra.Command, _ []string) error {
		c, err := o.client(cmd)
		if err != nil {
			return err
		}
		q := pf.query()
		setIf(q, "clientid", clientID)
		setIf(q, "like_clientid", like)
		setIf(q, "node", nodeName)
		setIf(q, "connected", connected)
		if cmd.Flags().Changed("username") {
			q.Set("username", username)
		}
		var page admin.Page[admin.Client]
		if ok, err := c.get(cmd.Context(), "/clients", q, &page); !ok {
			return err
		}
		rows := make([][]string, 0, len(page.Data))
		for _, cl := range page.Data {
			rows = append(rows, []string{cl.ClientID, orDash(cl.Username), yesNo(cl.Connected), orDash(cl.ProtocolVersion),
				orDash(cl.RemoteAddr), keepAlive(cl), strconv.Itoa(cl.SubscriptionsCount), strconv.Itoa(cl.Inflight), strconv.Itoa(cl.Queued)})
		}
		if err := c.table([]string{"CLIENT ID", "USERNAME", "CONNECTED", "PROTOCOL", "REMOTE ADDRESS", "KEEPALIVE", "SUBSCRIPTIONS", "INFLIGHT", "QUEUED"}, rows); err != nil {
			return err
		}
		return c.footer("clients", page.Meta, len(page.Data))
	}
	listFlags := func(cmd *cobra.Command) {
		pf.add(cmd)
		f := cmd.Flags()
		f.StringVar(&clientID, "clientid", "", "only the client with this id")
		f.StringVar(&like, "like", "", "only clients whose id contains this")
		f.StringVar(&username, "username", "", "only clients with this username")
		f.StringVar(&nodeName, "node", "", "only clients on this node")
		f.StringVar(&connected, "connected", "", "only connected (true) or offline (false) sessions")
	}
	cmd, listCmd := ctlListGroup("clients", "List, show and disconnect clients (default: list)",
		"List the clients and their sessions", list, listFlags)
	show := &cobra.Command{
		Use:   "show CLIENT_ID",
		Short: "Show one client with its subscriptions",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			if args[0] == "" {
				return errors.New("client id: must not be empty")
			}
			var d admin.ClientDetail
			if ok, err := c.get(cmd.Context(), "/clients/"+escapeSegment(args[0]), nil, &d); !ok {
				return err
			}
			expiry := strconv.FormatUint(uint64(d.SessionExpiry), 10) + "s"
			if d.SessionExpiry == 0xFFFFFFFF {
				expiry = "never"
			}
			rows := [][]string{
				{"client id", d.ClientID},
				{"node", d.Node},
				{"username", orDash(d.Username)},
				{"connected", yesNo(d.Connected)},
				{"protocol", orDash(d.ProtocolVersion)},
				{"remote address", orDash(d.RemoteAddr)},
				{"keepalive", keepAlive(d.Client)},
				{"session expiry", expiry},
				{"inflight", strconv.Itoa(d.Inflight)},
				{"queued", strconv.Itoa(d.Queued)},
				{"dropped", strconv.FormatUint(d.Dropped, 10)},
			}
			tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
			for _, r := range rows {
				fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if len(d.Subscriptions) == 0 {
				_, err := fmt.Fprintln(c.out, "\nno subscriptions")
				return err
			}
			fmt.Fprintln(c.out)
			return c.table([]string{"TOPIC", "QOS", "OPTIONS"}, subscriptionRows(d.Subscriptions, false))
		},
	}
	kick := &cobra.Command{
		Use:   "kick CLIENT_ID",
		Short: "Disconnect a client (MQTT 5.0 clients get DISCONNECT 0x98, administrative action)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			if args[0] == "" {
				return errors.New("client id: must not be empty")
			}
			if _, err := c.call(cmd.Context(), http.MethodDelete, "/clients/"+escapeSegment(args[0]), nil, nil); err != nil {
				return err
			}
			if c.o.json {
				return nil
			}
			_, err = fmt.Fprintf(c.out, "disconnected %s\n", args[0])
			return err
		},
	}
	cmd.AddCommand(listCmd, show, kick)
	return cmd
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func keepAlive(c admin.Client) string {
	if !c.Connected {
		return "-"
	}
	return strconv.Itoa(c.KeepAlive) + "s"
}

// subscriptionRows formats subscriptions, with the client id column when withID.
func subscriptionRows(subs []admin.Subscription, withID bool) [][]string {
	rows := make([][]string, 0, len(subs))
	for _, s := range subs {
		var opts []string
		if s.NoLocal {
			opts = append(opts, "no-local")
		}
		if s.RetainAsPublished {
			opts = append(opts, "retain-as-published")
		}
		if s.RetainHandling != 0 {
			opts = append(opts, "retain-handling="+strconv.Itoa(s.RetainHandling))
		}
		if s.SubscriptionID != 0 {
			opts = append(opts, "id="+strconv.Itoa(s.SubscriptionID))
		}
		o := "-"
		if len(opts) > 0 {
			o = strings.Join(opts, ",")
		}
		r := []string{s.Topic, strconv.Itoa(s.QoS), o}
		if withID {
			r = append([]string{s.ClientID}, r...)
		}
		rows = append(rows, r)
	}
	return rows
}

func ctlSubscriptionsCmd(o *ctlOptions) *cobra.Command {
	var pf pageFlags
	var clientID, topic, match, nodeName string
	cmd := &cobra.Command{
		Use:   "subscriptions",
		Short: "List the subscriptions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			q := pf.query()
			setIf(q, "clientid", clientID)
			setIf(q, "topic", topic)
			setIf(q, "match_topic", match)
			setIf(q, "node", nodeName)
			var page admin.Page[admin.Subscription]
			if ok, err := c.get(cmd.Context(), "/subscriptions", q, &page); !ok {
				return err
			}
			if err := c.table([]string{"CLIENT ID", "TOPIC", "QOS", "OPTIONS"}, subscriptionRows(page.Data, true)); err != nil {
				return err
			}
			return c.footer("subscriptions", page.Meta, len(page.Data))
		},
	}
	pf.add(cmd)
	f := cmd.Flags()
	f.StringVar(&clientID, "clientid", "", "only the subscriptions of this client")
	f.StringVar(&topic, "topic", "", "only subscriptions with exactly this filter")
	f.StringVar(&match, "match-topic", "", "only subscriptions whose filter matches this topic name")
	f.StringVar(&nodeName, "node", "", "only subscriptions on this node")
	return cmd
}
