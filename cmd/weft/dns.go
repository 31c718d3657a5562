package main

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent/config"
	"github.com/weftnet/weft/agent/resolver"
)

func newDNSCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "The host's resolver and weft's DNS names",
	}
	var cfgPath string
	setup := &cobra.Command{
		Use:   "setup",
		Short: "Print how to make this host's resolver ask the agent for the weft domain",
		Long: `With systemd-resolved running, the agent configures it itself (resolvectl dns/domain on
its device, reverted on exit). Without it, this prints the dnsmasq or /etc/resolv.conf line to add.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := config.DefaultConfig()
			if cfgPath != "" {
				var err error
				if cfg, err = config.LoadConfig(cfgPath); err != nil {
					return err
				}
			}
			if err := cfg.Validate(); err != nil {
				return err
			}
			_, err := fmt.Fprint(cmd.OutOrStdout(), resolver.Setup(cfg, resolver.System()))
			return err
		},
	}
	setup.Flags().StringVarP(&cfgPath, "config", "c", "", "the agent's YAML configuration file")
	cmd.AddCommand(setup)
	return cmd
}
