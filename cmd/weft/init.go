package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/agent/config"
)

func newInitCmd() *cobra.Command {
	var stateDir, name string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a new cluster on this host: its CA and gossip key; print how other hosts join",
		Long: `Create a new cluster with this host as its first CA host: the cluster CA (ca.key, mode 0600,
and ca.crt), the gossip key (gossip.key) and the subnet allocations (enroll/), all in the
state directory. Then start the agent here; it issues its own certificate and serves
enrollment on enroll.listen (:7947). Every other host joins with a token:

  weft init
  weft agent                                         # this host, the CA host
  weft token create                                  # here, once per new host
  weft agent --join-token TOKEN --retry-join ADDR    # on the new host

Whoever holds ca.key can admit hosts: keep the state directory private (it is 0700).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := agent.InitCluster(stateDir, name)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			for _, f := range res.Files {
				fmt.Fprintf(out, "wrote %s\n", f)
			}
			fmt.Fprintf(out, "cluster CA %q, fingerprint %s\n\n", res.CA.Name, res.Fingerprint)
			sd := ""
			if cmd.Flags().Changed("state-dir") {
				sd = " --state-dir " + stateDir
			}
			fmt.Fprintf(out, "next, on this host (the first CA host):\n  weft agent%s\n", sd)
			fmt.Fprintf(out, "then, here, for each host that joins (single-use, valid 24h; --groups, --ttl, --uses):\n  weft token create\n")
			fmt.Fprintf(out, "and, on that host, the line it prints:\n  weft agent --join-token TOKEN --retry-join ADDRESS_OF_THIS_HOST\n")
			return nil
		},
	}
	def := config.DefaultConfig()
	cmd.Flags().StringVar(&stateDir, "state-dir", def.StateDir, "the state directory of this host's agent (its state_dir)")
	cmd.Flags().StringVar(&name, "name", "weft", "the cluster CA's name (shown in certificates and refusals)")
	return cmd
}
