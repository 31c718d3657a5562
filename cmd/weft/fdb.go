package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
)

func newFDBCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fdb",
		Short: "List the L2 forwarding database: MAC → peer (or VTEP), static or learned, age",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			es, err := g.client().FDB(ctx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), es)
			}
			tw := table(cmd.OutOrStdout())
			fmt.Fprintln(tw, "MAC\tREMOTE\tTYPE\tAGE")
			for _, e := range es {
				kind := "learned"
				if e.Static {
					kind = "static"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", e.MAC, e.Remote, kind, dash(e.Age))
			}
			return tw.Flush()
		},
	}
	addJSONFlag(cmd, g)
	return cmd
}
