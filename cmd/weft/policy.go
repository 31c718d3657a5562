package main

import (
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/policy"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Network policy: apply a signed document, show rules and counters, test a flow",
	}
	cmd.AddCommand(newPolicyApplyCmd(g), newPolicyShowCmd(g), newPolicyTestCmd(g))
	return cmd
}

func newPolicyApplyCmd(g *globals) *cobra.Command {
	var caKey, caCert string
	var version uint64
	cmd := &cobra.Command{
		Use:   "apply FILE",
		Short: "Sign a policy document with the cluster CA key and spread it to every agent",
		Long: `apply checks FILE (YAML or JSON), signs it with the CA key, numbers it (--version, default:
one past the version the local agent holds, or the current Unix time if that is larger, so a
later apply wins), and hands it to the local agent, which installs it and spreads it by gossip.
Every agent must trust the CA (policy_ca_file).`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			body, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			if _, err := policy.Parse(body); err != nil {
				return fmt.Errorf("%s: %w", args[0], err)
			}
			ca, err := identity.LoadCertificateFile(caCert)
			if err != nil {
				return fmt.Errorf("--ca-cert: %w (pass --ca-cert and --ca-key: the ca.crt and ca.key that weft ca init wrote)", err)
			}
			k, err := identity.LoadCAKeyFile(caKey)
			if err != nil {
				return fmt.Errorf("--ca-key: %w (pass --ca-key: the ca.key that weft ca init wrote, kept off the hosts)", err)
			}
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			c := g.client()
			if version == 0 {
				st, err := c.Policy(ctx)
				if err != nil {
					return err
				}
				version = max(st.Version+1, uint64(time.Now().Unix()))
			}
			env, err := identity.SignDocument(ca, k, "policy", version, body)
			if err != nil {
				return err
			}
			v, err := c.ApplyPolicy(ctx, env)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "policy version %d applied (%d bytes signed); spreading by gossip\n", v, len(env))
			return nil
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&caKey, "ca-key", "ca.key", "the CA's private key (from `weft ca init`)")
	fl.StringVar(&caCert, "ca-cert", "ca.crt", "the CA's certificate")
	fl.Uint64Var(&version, "version", 0, "version number (default: newer than the agent's, at least the Unix time)")
	return cmd
}

func newPolicyShowCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show",
		Short: "List the policy's rules with their hit (flows admitted) and drop (packets refused) counts",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			st, err := g.client().Policy(ctx)
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if g.json {
				return printJSON(w, st)
			}
			fmt.Fprintf(w, "source %s, version %d, %d flows", st.Source, st.Version, st.Flows)
			if !st.Enforced {
				fmt.Fprint(w, " (NOT ENFORCED: plain L2 does not enforce policy)")
			}
			fmt.Fprintln(w)
			if len(st.Rules) == 0 {
				fmt.Fprintln(w, "no policy: everything is allowed")
			} else {
				tw := table(w)
				fmt.Fprintln(tw, "#\tNAME\tACTION\tHITS\tDROPS\tRULE")
				for _, r := range st.Rules {
					idx := fmt.Sprint(r.Index)
					if r.Index < 0 {
						idx = "-"
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%s\n", idx, r.Name, r.Action, r.Hits, r.Drops, r.Rule)
				}
				tw.Flush()
			}
			for r, n := range st.Drops {
				fmt.Fprintf(w, "dropped %s: %d\n", r, n)
			}
			for r, n := range st.Refused {
				fmt.Fprintf(w, "refused documents %s: %d\n", r, n)
			}
			return nil
		},
	}
	addJSONFlag(cmd, g)
	return cmd
}

func newPolicyTestCmd(g *globals) *cobra.Command {
	var from, to, port string
	cmd := &cobra.Command{
		Use:   "test --from HOST --to HOST --port PORT[/tcp|/udp]|icmp",
		Short: "Print the policy's verdict for a would-be flow and the rule that decides it",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if from == "" || to == "" || port == "" {
				return fmt.Errorf("--from, --to and --port are required")
			}
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			res, err := g.client().TestPolicy(ctx, from, to, port)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(cmd.OutOrStdout(), res)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s → %s %s: %s\n", res.From, res.To, res.Port, res.Explain)
			return err
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&from, "from", "", "source: a member's name or an address")
	fl.StringVar(&to, "to", "", "destination: a member's name or an address")
	fl.StringVar(&port, "port", "", `destination port and protocol: "5432/tcp", "53/udp", "5432" (tcp), or "icmp"`)
	addJSONFlag(cmd, g)
	return cmd
}
