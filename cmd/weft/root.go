package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/internal/version"
)

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "weft",
		Short: "weft: an encrypted userspace overlay network (TUN/TAP, VXLAN, WireGuard-style sessions, Serf gossip)",
		Long: `weft connects hosts that cannot load kernel modules with an encrypted overlay network.
Run 'weft agent' on every host; the other commands talk to the local agent.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       version.String(), // --version
	}
	root.SetVersionTemplate(versionLine(version.Get()) + "\n")
	g := &globals{}
	socket := config.SettingByFlag("socket") // control_socket: declared in config.Settings
	root.PersistentFlags().StringVar(&g.socket, socket.Flag, defaultSocket(), socket.Help)
	root.AddCommand(
		newAgentCmd(g),
		newJoinCmd(g), newLeaveCmd(g), newMembersCmd(g), newPeersCmd(g), newStatusCmd(g),
		newPingCmd(g), newServicesCmd(g), newRegisterCmd(g), newDeregisterCmd(g), newRenewCmd(g), newWatchCmd(g), newResolveCmd(g), newFDBCmd(g), newReloadCmd(g), newCNICmd(g),
		newKeyringCmd(g), newBenchCmd(), newKeygenCmd(), newCACmd(), newInitCmd(), newTokenCmd(g), newConfigCmd(), newVersionCmd(), newDNSCmd(), newGenDocsCmd(),
		newPolicyCmd(g),
		newClientCmd(g),
		newUICmd(g),
	)
	suggestFlagErrors(root)
	return root
}

// versionInfo is what `weft version --json` prints.
type versionInfo struct {
	version.Info
	Protocol int `json:"protocol"`
}

func versionLine(in version.Info) string {
	line := fmt.Sprintf("weft %s (protocol %d, %s %s/%s", in.Version, agent.ProtocolVersion, in.GoVersion, in.OS, in.Arch)
	if in.Commit != "" {
		line += ", commit " + in.Commit
	}
	return line + ")"
}

func newVersionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the weft version",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			in := version.Get()
			if asJSON {
				return printJSON(cmd.OutOrStdout(), versionInfo{Info: in, Protocol: agent.ProtocolVersion})
			}
			_, err := fmt.Fprintln(cmd.OutOrStdout(), versionLine(in))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print version, commit, Go version, OS and architecture as JSON")
	return cmd
}
