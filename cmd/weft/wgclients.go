package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"
	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent/api"
)

// weft client: stock WireGuard clients (phones, laptops, wg-quick) of this host.
func newClientCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "client",
		Short: "Stock WireGuard clients (phones, laptops, wg-quick) attached to this host",
	}
	cmd.AddCommand(newClientAddCmd(g), newClientListCmd(g), newClientRemoveCmd(g))
	return cmd
}

func newClientAddCmd(g *globals) *cobra.Command {
	var (
		address, publicKey, endpoint string
		keepalive                    time.Duration
		qr                           bool
	)
	cmd := &cobra.Command{
		Use:   "add NAME",
		Short: "Add a client and print its wg-quick config (the private key is shown only this once)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := api.ClientAdd{Name: args[0], PublicKey: publicKey, Endpoint: endpoint, Keepalive: api.Duration{Duration: keepalive}}
			if address != "" {
				ip, err := netip.ParseAddr(address)
				if err != nil {
					return fmt.Errorf("--address %q: %w", address, err)
				}
				req.Address = ip
			}
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			res, err := g.client().AddClient(ctx, req)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprint(out, res.Config)
			if qr {
				fmt.Fprintln(out)
				if err := writeQR(out, res.Config); err != nil {
					return err
				}
			}
			if publicKey != "" {
				fmt.Fprintf(cmd.ErrOrStderr(), "client %s: %s; put the client's own private key in place of the placeholder\n", res.Client.Name, res.Client.Address)
			} else {
				fmt.Fprintf(cmd.ErrOrStderr(), "client %s: %s; the private key above is not stored: keep this config\n", res.Client.Name, res.Client.Address)
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&address, "address", "", "the client's overlay address (default: the next free one of clients.range)")
	f.StringVar(&publicKey, "public-key", "", "the client's public key, when it made its own key pair (the config then has a placeholder private key)")
	f.DurationVar(&keepalive, "keepalive", 0, "PersistentKeepalive, e.g. 25s for a client behind NAT (0: off)")
	f.StringVar(&endpoint, "endpoint", "", "HOST:PORT the client dials (default: this host's gossip advertise address at the data port)")
	f.BoolVar(&qr, "qr", false, "also print the config as a QR code for the mobile WireGuard apps")
	return cmd
}

func newClientListCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List this host's clients",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			cs, err := g.client().Clients(ctx)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if g.json {
				return printJSON(out, cs)
			}
			tw := table(out)
			fmt.Fprintln(tw, "NAME\tADDRESS\tPUBLIC KEY\tKEEPALIVE\tCREATED")
			for _, c := range cs {
				ka := "-"
				if c.Keepalive.Duration > 0 {
					ka = c.Keepalive.String()
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", c.Name, c.Address, c.PublicKey, ka, c.Created.Format(time.RFC3339))
			}
			return tw.Flush()
		},
	}
	addJSONFlag(cmd, g)
	return cmd
}

func newClientRemoveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "remove NAME",
		Short: "Remove a client: its peer goes at once, its traffic stops",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			return g.client().RemoveClient(ctx, args[0])
		},
	}
}

// writeQR renders text as a QR code with half-block characters: two modules a character
// cell, dark on a light background (with the quiet zone), as phone cameras read it.
func writeQR(w io.Writer, text string) error {
	q, err := qrcode.New(text, qrcode.Low)
	if err != nil {
		return fmt.Errorf("qr: %w", err)
	}
	bits := q.Bitmap() // true: dark; includes the quiet zone
	var b strings.Builder
	for y := 0; y < len(bits); y += 2 {
		for x := range bits[y] {
			top := bits[y][x]
			bottom := y+1 < len(bits) && bits[y+1][x]
			switch {
			case top && bottom:
				b.WriteRune(' ')
			case top:
				b.WriteRune('▄')
			case bottom:
				b.WriteRune('▀')
			default:
				b.WriteRune('█')
			}
		}
		b.WriteByte('\n')
	}
	_, err = io.WriteString(w, b.String())
	return err
}
