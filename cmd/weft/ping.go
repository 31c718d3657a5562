package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent/api"
)

func newPingCmd(g *globals) *cobra.Command {
	var count int
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "ping PEER|ADDR",
		Short: "Ping a peer over the overlay: path (endpoint), round-trip time, whether a handshake was needed",
		Long: `Send ICMP echo requests from this host to a peer's overlay address (a peer name or public
key from weft peers, or an overlay address) and print, for each reply, the endpoint the
packets went to, the round-trip time and whether a handshake had to complete first. When no
reply comes, the peer's state (weft peers) says why.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(time.Duration(count+2) * (timeout + time.Second))
			defer cancel()
			c := g.client()
			if st, err := c.Status(ctx); err == nil && st.Interface == "netstack" {
				return errors.New("the agent runs --netstack: this host has no ICMP path into the overlay; " +
					"reach peers through a forward or the SOCKS5 proxy (README \"Without root\"), or check them with weft peers")
			}
			ps, err := c.Peers(ctx)
			if err != nil {
				return err
			}
			t, err := api.ResolvePing(ps, args[0])
			if err != nil {
				return err
			}
			pinger, err := api.NewPinger(t.Addr)
			if err != nil {
				return err
			}
			defer pinger.Close()
			out := cmd.OutOrStdout()
			name := t.Peer.Name
			if name == "" {
				name = t.Peer.PublicKey
			}
			fmt.Fprintf(out, "PING %s (%s) via endpoint %s, state %s\n", t.Addr, name, dash(t.Peer.Endpoint), dash(t.Peer.State))
			before, received := t.Peer.LastHandshake, 0
			for seq := 1; seq <= count; seq++ {
				rtt, err := pinger.Echo(t.Addr, seq, timeout)
				p, perr := c.PingPeer(ctx, t)
				if perr != nil {
					return perr
				}
				hs := "no (session up)"
				if !p.LastHandshake.Equal(before) {
					hs = "yes (completed during this ping)"
					before = p.LastHandshake
				}
				if err != nil {
					state := p.State
					if p.StateReason != "" {
						state += ": " + p.StateReason
					}
					fmt.Fprintf(out, "seq=%d: %v; peer %s\n", seq, err, state)
					continue
				}
				received++
				fmt.Fprintf(out, "reply from %s: seq=%d endpoint=%s time=%.3f ms handshake needed: %s\n", t.Addr, seq, dash(p.Endpoint), float64(rtt.Microseconds())/1000, hs)
				if seq < count {
					time.Sleep(200 * time.Millisecond)
				}
			}
			fmt.Fprintf(out, "%d sent, %d received\n", count, received)
			if received == 0 {
				return fmt.Errorf("no reply from %s", t.Addr)
			}
			return nil
		},
	}
	cmd.Flags().IntVarP(&count, "count", "c", 3, "echo requests to send")
	cmd.Flags().DurationVarP(&timeout, "timeout", "W", 2*time.Second, "wait for each reply")
	return cmd
}
