package main

import (
	"os"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/bench"
)

func newBenchCmd() *cobra.Command {
	var logLevel string
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure weft's throughput and latency against bare veth, kernel VXLAN and wireguard-go (root)",
		Long: `Build two hosts in network namespaces joined by a veth pair and measure, in alternation
over several rounds, single-stream and multi-stream TCP throughput (iperf3) and ping latency
through each system: the bare veth, a kernel vxlan device, wireguard-go (from the same module,
on its own TUN) and weft. Prints a table (median, min, max, ratio to wireguard-go) and writes
report.json, table.txt and a chart (SVG and PNG) into --out.

Needs root, iproute2, iperf3 and ping (bash .ci/run-deps installs them).`,
		Args: cobra.NoArgs,
	}
	opts := bench.Flags(cmd.Flags())
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "debug shows every command run")
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		ctx, cancel := commandContext(0)
		defer cancel()
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

// newWireGuardGoCmd is the hidden process `weft bench` starts inside a namespace to run
// wireguard-go as the reference system.
func newWireGuardGoCmd() *cobra.Command {
	return &cobra.Command{
		Use:                "__wireguard-go",
		Short:              "internal: run wireguard-go for weft bench",
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(_ *cobra.Command, args []string) error {
			return bench.WireGuardGoMain(args)
		},
	}
}
