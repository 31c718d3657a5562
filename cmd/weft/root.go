package main

import (
	"fmt"
	"runtime"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "weft",
		Short: "weft: an encrypted userspace overlay network (TUN/TAP, VXLAN, WireGuard-style sessions, Serf gossip)",
		Long: `weft connects hosts that cannot load kernel modules with an encrypted overlay network.
Run 'weft agent' on every host; the other commands talk to the local agent.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	g := &globals{}
	root.PersistentFlags().StringVar(&g.socket, "socket", defaultSocket(), "the agent's control socket (env WEFT_SOCKET)")
	root.AddCommand(
		newAgentCmd(g),
		newJoinCmd(g), newLeaveCmd(g), newMembersCmd(g), newPeersCmd(g), newStatusCmd(g),
		newServicesCmd(g), newRegisterCmd(g), newDeregisterCmd(g), newRenewCmd(g), newWatchCmd(g), newResolveCmd(g), newFDBCmd(g),
		newBenchCmd(), newWireGuardGoCmd(), newKeygenCmd(), newCACmd(), newVersionCmd(),
	)
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the weft version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "weft %s (protocol %d, %s %s/%s)\n", agent.Version, agent.ProtocolVersion, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}
