package main

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newKeyringCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keyring",
		Short: "List, install, use and remove gossip keys across the whole cluster",
		Long: `Rotate the gossip key of a running cluster without a restart (Serf's key manager: each
command is answered by every member):

  weft keygen --gossip > new.key
  weft keyring install "$(cat new.key)"   # every member accepts both keys
  weft keyring use "$(cat new.key)"       # every member sends with the new key
  weft keyring remove "$(cat old.key)"    # the old key is gone
  weft keyring list

Each member keeps its keyring in STATE_DIR/serf.keyring, which wins over gossip.key
at its next start; put the new key into the configuration of hosts that join later.
A KEY argument of "-" reads the key from standard input.`,
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "Show the keys installed on the members and the one each sends with",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(30 * time.Second)
			defer cancel()
			st, err := g.client().Keyring(ctx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			tw := table(cmd.OutOrStdout())
			fmt.Fprintf(tw, "KEY\tINSTALLED ON\tPRIMARY ON\n")
			keys := make([]string, 0, len(st.Keys))
			for k := range st.Keys {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(tw, "%s\t%d/%d\t%d/%d\n", k, st.Keys[k], st.Responses, st.Primary[k], st.Responses)
			}
			return tw.Flush()
		},
	}
	addJSONFlag(list, g)
	cmd.AddCommand(list)
	for _, op := range []struct{ name, short string }{
		{"install", "Install a gossip key on every member (accepted, not yet sent with)"},
		{"use", "Make an installed key the one every member sends with"},
		{"remove", "Remove a key (not the one in use) from every member"},
	} {
		cmd.AddCommand(&cobra.Command{
			Use:   op.name + " KEY",
			Short: op.short,
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				key := args[0]
				if key == "-" {
					b, err := io.ReadAll(io.LimitReader(cmd.InOrStdin(), 4096))
					if err != nil {
						return err
					}
					key = string(b)
				}
				ctx, cancel := commandContext(30 * time.Second)
				defer cancel()
				st, err := g.client().KeyringOp(ctx, op.name, strings.TrimSpace(key))
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: done on %d of %d members\n", op.name, st.Responses, st.Members)
				return err
			},
		})
	}
	return cmd
}
