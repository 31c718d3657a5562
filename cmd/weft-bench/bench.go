package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/bench"
	"github.com/weftnet/weft/internal/version"
)

func newRootCmd() *cobra.Command {
	var logLevel string
	cmd := &cobra.Command{
		Use:   "weft-bench",
		Short: "Measure weft's throughput and latency against bare veth, kernel VXLAN and wireguard-go (root)",
		Long: `Build two hosts in network namespaces joined by a veth pair and measure, in alternation
over several rounds, single-stream and multi-stream TCP throughput (iperf3) and ping latency
through each system: the bare veth, a kernel vxlan device, wireguard-go (from the same module,
on its own TUN) and weft. Prints a table (median, min, max, ratio to wireguard-go) and writes
report.json, table.txt and a chart (SVG and PNG) into --out.

The weft rows run 'weft agent' of --weft-bin (default: weft next to this binary, else on
PATH); the wireguard-go row runs this binary's hidden __wireguard-go command.

Needs root, iproute2, iperf3 and ping (bash .ci/run-deps installs them).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.String(),
	}
	cmd.CompletionOptions.DisableDefaultCmd = true
	cmd.AddCommand(newWireGuardGoCmd())
	opts := bench.Flags(cmd.Flags())
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "debug shows every command run")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
		defer stop()
		o := *opts
		o.Progress = os.Stderr
		o.Logger = agent.NewLogger(os.Stderr, logLevel)
		rep, err := bench.Run(ctx, o)
		if rep != nil {
			if werr := rep.WriteTable(cmd.OutOrStdout()); werr != nil && err == nil {
				err = werr
			}
		}
		return err
	}
	return cmd
}

// newWireGuardGoCmd is the hidden process weft-bench starts inside a namespace to run
// wireguard-go as the reference system.
func newWireGuardGoCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "__wireguard-go",
		Short:              "internal: run wireguard-go for weft-bench",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return bench.WireGuardGoMain(args)
		},
	}
}
