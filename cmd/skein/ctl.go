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
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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

// ctlListGroup builds a command group whose default action is list, and its "list"
// subcommand; both take the listing flags.
func ctlListGroup(use, short, listShort string, list func(*cobra.Command, []string) error, flags func(*cobra.Command)) (group, listCmd *cobra.Command) {
	group = &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs, RunE: list}
	flags(group)
	listCmd = &cobra.Command{Use: "list", Short: listShort, Args: cobra.NoArgs, RunE: list}
	flags(listCmd)
	return group, listCmd
}
