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
		Short: "List, install, use and remove the gossip keys of THIS host",
		Long: `Each command acts on this host's gossip keyring only, over the local control socket
(root). Gossip members cannot change a host's keys: weft encrypts gossip itself and Serf
holds no keyring, so Serf's keyring queries are refused by every host.

Rotate the gossip key of a running cluster host by host, each step on every host
before the next (a loop over ssh, say):

  weft keygen --gossip > new.key
  for h in $HOSTS; do ssh $h weft keyring install - < new.key; done   # accept both keys
  for h in $HOSTS; do ssh $h weft keyring use - < new.key; done       # send with the new one
  for h in $HOSTS; do ssh $h weft keyring remove - < old.key; done    # drop the old one
  for h in $HOSTS; do ssh $h weft keyring list; done

A host left out of the loop is cut off: from "use" on it cannot open what the others
send, after "remove" nothing it sends opens. That is how a rotation evicts a host.

Each host keeps its keyring in STATE_DIR/gossip.keyring (0600), which wins over gossip.key
at its next start (an older weft's serf.keyring is migrated into it once); put the new key
into the configuration of the hosts and of those that join later.
A KEY argument of "-" reads the key from standard input.`,
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "Show this host's gossip keys and the one it sends with",
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
			fmt.Fprintf(tw, "KEY\tPRIMARY\n")
			keys := make([]string, 0, len(st.Keys))
			for k := range st.Keys {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				primary := ""
				if st.Primary[k] > 0 {
					primary = "yes"
				}
				fmt.Fprintf(tw, "%s\t%s\n", k, primary)
			}
			return tw.Flush()
		},
	}
	addJSONFlag(list, g)
	cmd.AddCommand(list)
	for _, op := range []struct{ name, short string }{
		{"install", "Install a gossip key on this host (accepted, not yet sent with)"},
		{"use", "Make an installed key the one this host sends with"},
		{"remove", "Remove a key (not the one in use) from this host"},
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
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s: done on this host (%d key(s) installed)\n", op.name, len(st.Keys))
				return err
			},
		})
	}
	return cmd
}
