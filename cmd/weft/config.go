package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/services"
)

// weft config check FILE: what `weft agent --check -c FILE` does, without the agent's flags.
func newConfigCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Work with agent configuration files",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "check FILE",
		Short: "Check an agent configuration file without starting the agent (no device, no socket)",
		Long: `Check an agent configuration file: every key and value, the services and their checks,
the gossip key (and that its file is mode 0600), and that mtu fits the underlay (the link
toward the peers, read from the routing table). It opens no device and no socket, so it can
run before a restart. Every problem is named by its line and YAML key.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.LoadConfig(args[0])
			if err != nil {
				return err
			}
			agent.FollowUnderlay(&cfg) // the mtu follows the underlay, or must fit it
			if err := cfg.Check(); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			return printCheck(cmd.OutOrStdout(), args[0], cfg)
		},
	})
	return cmd
}

// printCheck says that a configuration is good and what it amounts to.
func printCheck(w io.Writer, path string, cfg config.Config) error {
	if path == "" {
		path = "(defaults and flags)"
	}
	gossip := "disabled"
	if !cfg.Gossip.Disabled {
		gossip = "bind " + cfg.Gossip.Bind
	}
	_, err := fmt.Fprintf(w, "%s: configuration OK (name %s, mode %s, interface %s, port %d, gossip %s, %d static peer(s), %d service(s))\n",
		path, cfg.Name, cfg.Mode, cfg.Interface, cfg.ListenPort, gossip, len(cfg.Peers), len(cfg.Services))
	if err == nil {
		_, err = fmt.Fprintf(w, "%s: mtu %d: %s\n", path, cfg.MTU, cfg.MTUSource())
	}
	if warn := services.ConsulTokenWarning(cfg.ConsulAPI); warn != "" && err == nil {
		_, err = fmt.Fprintf(w, "%s: warning: %s\n", path, warn)
	}
	return err
}
