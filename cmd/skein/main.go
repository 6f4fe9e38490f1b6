// Command skein is the Skein MQTT broker and its tools: serve, version, and (as they
// land) pub, sub, passwd, bench and ctl.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func main() {
	// The Mosquitto-compatible tools parse their own flags: their syntax (-h for the
	// host, multi-word -D) does not fit cobra.
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "pub":
			os.Exit(runPub(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		case "sub":
			os.Exit(runSub(os.Args[2:], os.Stdout, os.Stderr))
		case "passwd":
			os.Exit(runPasswd(os.Args[2:], os.Stdin, os.Stdout, os.Stderr))
		}
	}
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "skein:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "skein",
		Short:         "Skein, a clustered MQTT broker",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServeCmd(), newVersionCmd())
	root.AddCommand(newCtlCmd())
	root.AddCommand(newBenchCmd())
	return root
}
