package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/skein-mq/skein/node/admin"
)

// The verbs about messages: retained messages, and publishing one.

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
