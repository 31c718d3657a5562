package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newReloadCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "reload",
		Short: "Reload what can change without a restart (log level, services, pki files), as SIGHUP does",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(30 * time.Second)
			defer cancel()
			if err := g.client().Reload(ctx); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "reloaded")
			return nil
		},
	}
}
