package main

import (
	"bufio"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/crypto"
	"github.com/weftnet/weft/discovery/membership"
)

func newKeygenCmd() *cobra.Command {
	var public, gossip bool
	cmd := &cobra.Command{
		Use:   "keygen",
		Short: "Generate a private key, derive its public key, or generate a gossip key",
		Long: `Generate keys in WireGuard's base64 form.

  weft keygen                      print a new private key
  weft keygen --public < key       print the public key of the private key on stdin
  weft keygen --gossip             print a new 32-byte gossip encryption key

Keep private keys in files only root can read: weft keygen > key && chmod 600 key`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := cmd.OutOrStdout()
			switch {
			case public && gossip:
				return errors.New("--public and --gossip exclude each other")
			case gossip:
				k, err := membership.GenerateGossipKey()
				if err != nil {
					return err
				}
				fmt.Fprintln(out, base64.StdEncoding.EncodeToString(k))
			case public:
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && !errors.Is(err, io.EOF) {
					return err
				}
				priv, err := crypto.ParsePrivateKey(strings.TrimSpace(line))
				if err != nil {
					return fmt.Errorf("stdin is not a private key (expected the output of `weft keygen`): %w", err)
				}
				fmt.Fprintln(out, priv.Public().String())
			default:
				priv, err := crypto.GeneratePrivateKey()
				if err != nil {
					return err
				}
				fmt.Fprintln(out, priv.String())
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&public, "public", false, "read a private key on stdin and print its public key")
	cmd.Flags().BoolVar(&gossip, "gossip", false, "print a new 32-byte gossip key")
	return cmd
}
