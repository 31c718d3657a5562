package main

import (
	"fmt"
	"io"
	"strings"

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
	_, err := fmt.Fprintf(w, "%s: configuration OK (name %s, mode %s, %s, port %d, gossip %s, %d static peer(s), %d service(s))\n",
		path, cfg.Name, cfg.Mode, checkDevice(cfg), cfg.ListenPort, gossip, len(cfg.Peers), len(cfg.Services))
	if err == nil {
		_, err = fmt.Fprintf(w, "%s: mtu %d: %s\n", path, cfg.MTU, cfg.MTUSource())
	}
	if warn := services.ConsulTokenWarning(cfg.ConsulAPI); warn != "" && err == nil {
		_, err = fmt.Fprintf(w, "%s: warning: %s\n", path, warn)
	}
	return err
}

// checkDevice says what carries the host's overlay traffic in cfg's mode: a TUN or TAP
// device of that name, or (netstack) a userspace stack reached through proxies and relays.
func checkDevice(cfg config.Config) string {
	if cfg.Netstack {
		var via []string
		if p := cfg.NetstackProxy.SOCKS5; p != "" {
			via = append(via, "SOCKS5 "+p)
		}
		if p := cfg.NetstackProxy.HTTP; p != "" {
			via = append(via, "HTTP proxy "+p)
		}
		for _, f := range cfg.Forward {
			via = append(via, "forward "+f.String())
		}
		for _, e := range cfg.Expose {
			via = append(via, "expose "+e.String())
		}
		if len(via) == 0 {
			via = append(via, "nothing: no proxy, forward or expose is set")
		}
		return "userspace network stack (netstack: no TUN device; reached through " + strings.Join(via, ", ") + ")"
	}
	if cfg.Mode == "l2" {
		return "TAP device " + cfg.Interface
	}
	return "TUN device " + cfg.Interface
}
