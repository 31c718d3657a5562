package main

import (
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent/api"
)

func newTokenCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Create, list and revoke join tokens on a CA host",
		Long: `A join token lets one new host enroll with this CA host: it proves the token, receives a
certificate for its name, key, the token's groups and a /24 this host allocates, and the gossip
key. A token pins this cluster's CA, so the new host cannot be enrolled by an impostor.

  weft token create [--groups G]... [--ttl 24h] [--uses 1]
  weft token list
  weft token revoke ID`,
	}
	var (
		groups []string
		ttl    time.Duration
		uses   int
	)
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a join token and print the command that joins with it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			t, err := g.client().CreateToken(ctx, api.TokenRequest{Groups: groups, TTL: ttl.String(), Uses: uses})
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), t)
			}
			out := cmd.OutOrStdout()
			fmt.Fprintln(out, t.Token)
			fmt.Fprintf(cmd.ErrOrStderr(), "token %s: %d use(s), expires %s; on the new host run:\n  %s\n", t.Info.ID, t.Info.Uses, t.Info.Expires.Local().Format(time.RFC3339), t.Join)
			return nil
		},
	}
	create.Flags().StringArrayVar(&groups, "groups", nil, "a group the enrolled host's certificate holds (repeatable)")
	create.Flags().DurationVar(&ttl, "ttl", 24*time.Hour, "how long the token can be used")
	create.Flags().IntVar(&uses, "uses", 1, "how many hosts may enroll with it")
	addJSONFlag(create, g)

	list := &cobra.Command{
		Use:   "list",
		Short: "List the tokens, the /24s handed out and the enrollment counters",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			l, err := g.client().Tokens(ctx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), l)
			}
			tw := table(cmd.OutOrStdout())
			now := time.Now()
			fmt.Fprintf(tw, "ID\tSTATE\tUSED\tEXPIRES\tGROUPS\n")
			for _, t := range l.Tokens {
				state := "valid"
				switch {
				case t.Revoked:
					state = "revoked"
				case t.Used >= t.Uses:
					state = "used"
				case !now.Before(t.Expires):
					state = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%d/%d\t%s\t%s\n", t.ID, state, t.Used, t.Uses, t.Expires.Local().Format(time.RFC3339), strings.Join(t.Groups, ","))
			}
			fmt.Fprintf(tw, "\nHOST\tSUBNET\tPUBLIC KEY\tSINCE\t\n")
			for _, a := range l.Allocations {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", a.Name, a.Prefix, a.PublicKey, a.Issued.Local().Format(time.RFC3339))
			}
			if len(l.Counters) > 0 {
				names := make([]string, 0, len(l.Counters))
				for k := range l.Counters {
					names = append(names, k)
				}
				sort.Strings(names)
				parts := make([]string, 0, len(names))
				for _, k := range names {
					parts = append(parts, fmt.Sprintf("%s=%d", k, l.Counters[k]))
				}
				fmt.Fprintf(tw, "\nenrollment since start: %s\n", strings.Join(parts, " "))
			}
			return tw.Flush()
		},
	}
	addJSONFlag(list, g)

	revoke := &cobra.Command{
		Use:   "revoke ID",
		Short: "Revoke a token (hosts it already enrolled keep their certificates: blocklist those)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			if err := g.client().RevokeToken(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "revoked %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(create, list, revoke)
	return cmd
}
