package main

import (
	"fmt"
	"strings"
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
			r, err := g.client().Reload(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if len(r.Changed) == 0 {
				fmt.Fprintln(out, "reloaded: nothing changed")
			}
			for _, c := range r.Changed {
				fmt.Fprintln(out, "reloaded:", c)
			}
			if len(r.RestartNeeded) > 0 {
				fmt.Fprintf(out, "changed but applied only after a restart (systemctl restart weft): %s\n", strings.Join(r.RestartNeeded, ", "))
			}
			return nil
		},
	}
}
