package main

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent/api"
)

func newJoinCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "join ADDR...",
		Short: "Join the gossip cluster through one or more members (host:port, port 7946 by default)",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(30 * time.Second)
			defer cancel()
			n, err := g.client().Join(ctx, args)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "joined %d of %d address(es)\n", n, len(args))
			return nil
		},
	}
	return cmd
}

func newLeaveCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Leave the cluster gracefully: announce the leave, withdraw routes, stop the agent",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(30 * time.Second)
			defer cancel()
			if err := g.client().Leave(ctx); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "left the cluster; the agent is stopping")
			return nil
		},
	}
}

func newMembersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "members",
		Short: "List the gossip members and their overlay subnets",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			ms, err := g.client().Members(ctx)
			if err != nil {
				return err
			}
			sort.Slice(ms, func(i, j int) bool { return ms[i].Name < ms[j].Name })
			if g.json {
				return printJSON(cmd.OutOrStdout(), ms)
			}
			tw := table(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tADDRESS\tSTATUS\tSUBNET\tDATA PORT\tPUBLIC KEY\tREFUSED")
			for _, m := range ms {
				key := m.PublicKey
				if m.Error != "" {
					key = "(bad tags: " + m.Error + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", m.Name, m.Addr, m.Status, dash(m.Subnet), m.DataPort, key, dash(m.Refused))
			}
			return tw.Flush()
		},
	}
	addJSONFlag(cmd, g)
	return cmd
}

func newPeersCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "peers",
		Short: "List datapath peers: endpoint, path MTU, last handshake, traffic and drops",
		Long: `List datapath peers: state, endpoint, allowed IPs, the path MTU toward the endpoint (the
largest underlay IP packet that reaches it, found from the route, ICMP errors and probes;
"-" until known), the last handshake, traffic and drops by reason.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			ps, err := g.client().Peers(ctx)
			if err != nil {
				return err
			}
			sort.Slice(ps, func(i, j int) bool { return ps[i].Name+ps[i].PublicKey < ps[j].Name+ps[j].PublicKey })
			if g.json {
				return printJSON(cmd.OutOrStdout(), ps)
			}
			tw := table(cmd.OutOrStdout())
			fmt.Fprintln(tw, "NAME\tSTATE\tENDPOINT\tALLOWED IPS\tPATH MTU\tHANDSHAKE\tRX\tTX\tDROPS")
			for _, p := range ps {
				state := dash(p.State)
				if p.StateReason != "" {
					state += ": " + p.StateReason
				}
				pmtu := "-"
				if p.PathMTU > 0 {
					pmtu = fmt.Sprint(p.PathMTU)
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", dash(p.Name), state, dash(p.Endpoint), strings.Join(p.AllowedIPs, ","),
					pmtu, age(p.LastHandshake), bytesHuman(p.RxBytes), bytesHuman(p.TxBytes), drops(p.Drops))
			}
			return tw.Flush()
		},
	}
	addJSONFlag(cmd, g)
	return cmd
}

func newStatusCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the local agent: identity, address, subnet, members, peers, drops",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			st, err := g.client().Status(ctx)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), st)
			}
			tw := table(cmd.OutOrStdout())
			rows := [][2]string{
				{"name", st.Name},
				{"version", fmt.Sprintf("%s (protocol %d)", st.Version, st.Protocol)},
				{"mode", st.Mode + ", encryption " + st.Encryption},
				{"public key", st.PublicKey},
				{"interface", fmt.Sprintf("%s (mtu %d, vni %d)", st.Interface, st.MTU, st.VNI)},
				{"address", st.Address},
				{"subnet", dash(st.Subnet)},
				{"listen port", fmt.Sprint(st.ListenPort)},
				{"gossip", st.Gossip},
				{"members", fmt.Sprint(st.Members)},
				{"peers", fmt.Sprint(st.Peers)},
				{"up since", st.Started.Format(time.RFC3339) + " (" + age(st.Started) + ")"},
				{"drops", drops(st.Drops)},
			}
			if st.MTUSource != "" { // an older agent does not say
				rows = slices.Insert(rows, 5, [2]string{"mtu", fmt.Sprintf("%d: %s", st.MTU, st.MTUSource)})
			}
			if st.TAP != nil {
				rows = slices.Insert(rows, 5, [2]string{"device", st.Interface + " (" + tapMode(st.TAP) + ")"})
			}
			if st.TUN != "" {
				rows = slices.Insert(rows, 5, [2]string{"device", st.Interface + " (TUN, " + st.TUN + ")"})
			}
			for _, r := range rows {
				fmt.Fprintf(tw, "%s:\t%s\n", r[0], r[1])
			}
			if c := st.Certificate; c != nil {
				fmt.Fprintf(tw, "certificate:\t%s %s, expires %s (%s), groups %s, %d CA(s), %d blocklisted\n", c.Name,
					strings.Join(c.Prefixes, ","), c.NotAfter.Format(time.RFC3339), time.Until(c.NotAfter).Round(time.Minute),
					dash(strings.Join(c.Groups, ",")), c.CAs, c.Blocklisted)
			}
			if st.UI != "" {
				fmt.Fprintf(tw, "web console:\t%s\n", st.UI)
			}
			if st.RetryJoin != "" {
				fmt.Fprintf(tw, "retry join:\t%s\n", st.RetryJoin)
			}
			for _, p := range st.Problems {
				fmt.Fprintf(tw, "problem:\t%s\n", p)
			}
			return tw.Flush()
		},
	}
	addJSONFlag(cmd, g)
	return cmd
}

// tapMode is "TAP, offload" or "TAP, frame by frame: REASON".
func tapMode(t *api.TAPStatus) string {
	if t.Offload {
		return "TAP, offload"
	}
	return "TAP, frame by frame: " + t.Reason
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func drops(m map[string]uint64) string {
	if len(m) == 0 {
		return "0"
	}
	keys := make([]string, 0, len(m))
	for k, v := range m {
		if v > 0 {
			keys = append(keys, k)
		}
	}
	if len(keys) == 0 {
		return "0"
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}
