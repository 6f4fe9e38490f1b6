package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/skein-mq/skein/node/admin"
)

// ctlOptions are the settings every `skein ctl` verb shares.
type ctlOptions struct {
	url      string
	user     string
	password string
	apiKey   string
	json     bool
	timeout  time.Duration
}

// maxCtlAnswer bounds an answer of the API that ctl reads.
const maxCtlAnswer = 256 << 20

func newCtlCmd() *cobra.Command {
	o := &ctlOptions{}
	cmd := &cobra.Command{
		Use:   "ctl",
		Short: "Inspect and manage a running broker through its HTTP admin API",
		Long: `Inspect and manage a running broker through its HTTP admin API (skein serve
--http-addr). Answers print as tables; --json prints the API's JSON instead.
The password and the API key may also come from $SKEIN_API_PASSWORD and
$SKEIN_API_KEY, which keeps them out of the process list.`,
		Args: cobra.NoArgs,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.url, "url", "http://127.0.0.1:18083", "base URL of the broker's HTTP address")
	pf.StringVar(&o.user, "user", "", "basic auth user of the admin API (--api-user of serve)")
	pf.StringVar(&o.password, "password", "", "basic auth password (default $SKEIN_API_PASSWORD)")
	pf.StringVar(&o.apiKey, "api-key", "", "API key, sent as a bearer token (default $SKEIN_API_KEY)")
	pf.BoolVar(&o.json, "json", false, "print the raw JSON answers")
	pf.DurationVar(&o.timeout, "timeout", 30*time.Second, "give up on a request after this long")
	cmd.AddCommand(
		ctlNodesCmd(o), ctlStatsCmd(o), ctlClientsCmd(o), ctlSubscriptionsCmd(o),
		ctlRoutesCmd(o), ctlRetainedCmd(o), ctlPublishCmd(o), ctlClusterCmd(o),
	)
	return cmd
}

// ctlClient is one invocation's connection to the API.
type ctlClient struct {
	o    *ctlOptions
	base string
	hc   *http.Client
	out  io.Writer
}

// client checks the shared options and returns the API client of cmd.
func (o *ctlOptions) client(cmd *cobra.Command) (*ctlClient, error) {
	user, password, key := o.user, o.password, o.apiKey
	if password == "" {
		password = os.Getenv("SKEIN_API_PASSWORD")
	}
	if key == "" {
		key = os.Getenv("SKEIN_API_KEY")
	}
	if o.user != "" && o.apiKey != "" {
		return nil, errors.New("--user and --api-key: use one of them")
	}
	if o.password != "" && user == "" {
		return nil, errors.New("--password: needs --user")
	}
	if user == "" {
		password = ""
	} else {
		key = ""
	}
	base := strings.TrimRight(o.url, "/")
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(base)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("--url %q: want http://host:port", o.url)
	}
	if o.timeout <= 0 {
		return nil, fmt.Errorf("--timeout %v: must be positive", o.timeout)
	}
	c := &ctlClient{
		o:    &ctlOptions{user: user, password: password, apiKey: key, json: o.json},
		base: base,
		// One request per invocation: no idle connection is kept behind.
		hc:  &http.Client{Timeout: o.timeout, Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, DisableKeepAlives: true}},
		out: cmd.OutOrStdout(),
	}
	return c, nil
}

// ctlError is an error answer of the API.
type ctlError struct {
	method, path string
	status       string
	msg          string
}

func (e *ctlError) Error() string {
	return fmt.Sprintf("%s %s: %s: %s", e.method, e.path, e.status, e.msg)
}

// call sends one request to path (under /api/v1, already escaped) and returns the
// answer's body, failing on an error status.
func (c *ctlClient) call(ctx context.Context, method, path string, query url.Values, body any) ([]byte, error) {
	target := c.base + admin.Prefix + path
	if len(query) > 0 {
		target += "?" + query.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, target, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	switch {
	case c.o.user != "":
		req.SetBasicAuth(c.o.user, c.o.password)
	case c.o.apiKey != "":
		req.Header.Set("Authorization", "Bearer "+c.o.apiKey)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err // names the method and URL already
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxCtlAnswer))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		e := &ctlError{method: method, path: admin.Prefix + path, status: resp.Status}
		var ae admin.Error
		if json.Unmarshal(data, &ae) == nil && ae.Error != "" {
			e.msg = ae.Error
		} else {
			e.msg = strings.TrimSpace(string(data))
		}
		return nil, e
	}
	return data, nil
}

// get calls GET and decodes the answer into v, or prints it as is with --json; it
// reports whether the caller should print a table.
func (c *ctlClient) get(ctx context.Context, path string, query url.Values, v any) (bool, error) {
	data, err := c.call(ctx, http.MethodGet, path, query, nil)
	if err != nil {
		return false, err
	}
	if c.o.json {
		return false, c.printJSON(data)
	}
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode answer of %s: %w", path, err)
	}
	return true, nil
}

func (c *ctlClient) printJSON(data []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(data), "", "  "); err != nil {
		return fmt.Errorf("answer is not JSON: %w", err)
	}
	buf.WriteByte('\n')
	_, err := c.out.Write(buf.Bytes())
	return err
}

// table writes rows under a header, aligned.
func (c *ctlClient) table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// footer says which part of a list a page shows, when it is not all of it.
func (c *ctlClient) footer(what string, m admin.Meta, shown int) error {
	if shown == m.Count && m.Page == 1 {
		_, err := fmt.Fprintf(c.out, "%d %s\n", m.Count, what)
		return err
	}
	pages := max((m.Count+m.Limit-1)/m.Limit, 1)
	_, err := fmt.Fprintf(c.out, "%d %s, page %d of %d (--page, --limit)\n", m.Count, what, m.Page, pages)
	return err
}

// escapeSegment escapes one path segment, "/" included, so client ids and topics of
// any shape reach the API whole; "." and ".." would otherwise be cleaned away.
func escapeSegment(s string) string {
	e := url.PathEscape(s)
	if s == "." || s == ".." {
		e = strings.ReplaceAll(e, ".", "%2E")
	}
	return e
}

// pageFlags adds --page and --limit to a list verb.
type pageFlags struct{ page, limit int }

func (p *pageFlags) add(cmd *cobra.Command) {
	cmd.Flags().IntVar(&p.page, "page", 1, "page of the list to show")
	cmd.Flags().IntVar(&p.limit, "limit", admin.DefaultLimit, fmt.Sprintf("entries per page, at most %d", admin.MaxLimit))
}

func (p *pageFlags) query() url.Values {
	q := url.Values{}
	q.Set("page", strconv.Itoa(p.page))
	q.Set("limit", strconv.Itoa(p.limit))
	return q
}

// setIf adds a query parameter when its value is set.
func setIf(q url.Values, key, val string) {
	if val != "" {
		q.Set(key, val)
	}
}

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

func ctlRetainedCmd(o *ctlOptions) *cobra.Command {
	var pf pageFlags
	var filter string
	list := func(cmd *cobra.Command, _ []string) error {
		c, err := o.client(cmd)
		if err != nil {
			return err
		}
		q := pf.query()
		setIf(q, "topic", filter)
		var page admin.Page[admin.Retained]
		if ok, err := c.get(cmd.Context(), "/retained", q, &page); !ok {
			return err
		}
		rows := make([][]string, 0, len(page.Data))
		for _, r := range page.Data {
			rows = append(rows, []string{r.Topic, strconv.Itoa(r.QoS), strconv.Itoa(r.PayloadSize), payloadPreview(r, 40)})
		}
		if err := c.table([]string{"TOPIC", "QOS", "SIZE", "PAYLOAD"}, rows); err != nil {
			return err
		}
		return c.footer("retained messages", page.Meta, len(page.Data))
	}
	listFlags := func(cmd *cobra.Command) {
		pf.add(cmd)
		cmd.Flags().StringVar(&filter, "topic", "#", "topic filter the retained messages must match")
	}
	cmd, listCmd := ctlListGroup("retained", "List, show and delete retained messages (default: list)",
		"List the retained messages", list, listFlags)
	show := &cobra.Command{
		Use:   "show TOPIC",
		Short: "Show the retained message of a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			var r admin.Retained
			if ok, err := c.get(cmd.Context(), "/retained/"+escapeSegment(args[0]), nil, &r); !ok {
				return err
			}
			tw := tabwriter.NewWriter(c.out, 0, 0, 2, ' ', 0)
			fmt.Fprintf(tw, "topic:\t%s\n", r.Topic)
			fmt.Fprintf(tw, "qos:\t%d\n", r.QoS)
			fmt.Fprintf(tw, "from:\t%s\n", orDash(r.From))
			if r.ReceivedAt != nil {
				fmt.Fprintf(tw, "received:\t%s\n", r.ReceivedAt.Format(time.RFC3339))
			}
			if r.ExpiresAt != nil {
				fmt.Fprintf(tw, "expires:\t%s\n", r.ExpiresAt.Format(time.RFC3339))
			}
			fmt.Fprintf(tw, "size:\t%d\n", r.PayloadSize)
			fmt.Fprintf(tw, "payload (%s):\t%s\n", r.PayloadEncoding, r.Payload)
			return tw.Flush()
		},
	}
	del := &cobra.Command{
		Use:   "delete TOPIC",
		Short: "Delete the retained message of a topic",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			if _, err := c.call(cmd.Context(), http.MethodDelete, "/retained/"+escapeSegment(args[0]), nil, nil); err != nil {
				return err
			}
			if c.o.json {
				return nil
			}
			_, err = fmt.Fprintf(c.out, "deleted the retained message of %s\n", args[0])
			return err
		},
	}
	cmd.AddCommand(listCmd, show, del)
	return cmd
}

// payloadPreview shortens a payload for a table cell, showing control characters
// as dots so the table stays one line per message.
func payloadPreview(r admin.Retained, max int) string {
	if r.PayloadEncoding != admin.EncodingPlain {
		return fmt.Sprintf("(%d bytes, binary)", r.PayloadSize)
	}
	s := strings.Map(func(c rune) rune {
		if unicode.IsControl(c) {
			return '.'
		}
		return c
	}, r.Payload)
	if utf8.RuneCountInString(s) > max {
		s = string([]rune(s)[:max-3]) + "..."
	}
	return s
}

func ctlPublishCmd(o *ctlOptions) *cobra.Command {
	var req admin.PublishRequest
	cmd := &cobra.Command{
		Use:   "publish -t TOPIC [-m MESSAGE] [-q QOS] [-r]",
		Short: "Publish a message through the broker, as client \"$api\"",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.client(cmd)
			if err != nil {
				return err
			}
			data, err := c.call(cmd.Context(), http.MethodPost, "/publish", nil, &req)
			if err != nil {
				return err
			}
			if c.o.json {
				return c.printJSON(data)
			}
			var res admin.PublishResult
			if err := json.Unmarshal(data, &res); err != nil {
				return fmt.Errorf("decode answer of /publish: %w", err)
			}
			_, err = fmt.Fprintf(c.out, "published to %s: reached %d subscribers\n", res.Topic, res.Subscribers)
			return err
		},
	}
	f := cmd.Flags()
	f.StringVarP(&req.Topic, "topic", "t", "", "topic to publish to")
	f.StringVarP(&req.Payload, "message", "m", "", "payload; empty with -r deletes the retained message")
	f.IntVarP(&req.QoS, "qos", "q", 0, "quality of service: 0, 1 or 2")
	f.BoolVarP(&req.Retain, "retain", "r", false, "retain the message")
	_ = cmd.MarkFlagRequired("topic") // the flag exists
	return cmd
}

// ctlListGroup builds a command group whose default action is list, and its "list"
// subcommand; both take the listing flags.
func ctlListGroup(use, short, listShort string, list func(*cobra.Command, []string) error, flags func(*cobra.Command)) (group, listCmd *cobra.Command) {
	group = &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: list}
	flags(group)
	listCmd = &cobra.Command{Use: "list", Short: listShort, Args: cobra.NoArgs, RunE: list}
	flags(listCmd)
	return group, listCmd
}
