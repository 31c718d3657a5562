package main

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/discovery/catalog/balance"
)

func newServicesCmd(g *globals) *cobra.Command {
	var local bool
	cmd := &cobra.Command{
		Use:   "services",
		Short: "List the service catalog: every instance in the cluster and its health",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			out := cmd.OutOrStdout()
			if local {
				ls, err := g.client().LocalServices(ctx)
				if err != nil {
					return err
				}
				if g.json {
					return printJSON(out, ls)
				}
				tw := table(out)
				fmt.Fprintln(tw, "SERVICE\tPORT\tTAGS\tWEIGHT\tCHECK\tHEALTH\tOUTPUT")
				for _, l := range ls {
					check := "-"
					if l.Service.Check != nil {
						check = l.Service.Check.Kind.String()
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%s\n", l.Service.Name, l.Service.Port, dash(strings.Join(l.Service.Tags, ",")), l.Service.Weight, check, l.Health, dash(l.Output))
				}
				return tw.Flush()
			}
			r, err := g.client().Services(ctx, 0, 0)
			if err != nil {
				return err
			}
			if g.json {
				return printJSON(out, r)
			}
			printInstances(cmd, r.Instances)
			return nil
		},
	}
	cmd.Flags().BoolVar(&local, "local", false, "only this agent's registrations, with check output")
	addJSONFlag(cmd, g)
	return cmd
}

func printInstances(cmd *cobra.Command, inst []catalog.Instance) {
	sort.Slice(inst, func(i, j int) bool {
		if inst[i].Service.Name != inst[j].Service.Name {
			return inst[i].Service.Name < inst[j].Service.Name
		}
		return inst[i].Node < inst[j].Node
	})
	tw := table(cmd.OutOrStdout())
	fmt.Fprintln(tw, "SERVICE\tNODE\tADDRESS\tPORT\tTAGS\tWEIGHT\tHEALTH")
	for _, in := range inst {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%d\t%s\n", in.Service.Name, in.Node, in.Addr, in.Service.Port, dash(strings.Join(in.Service.Tags, ",")), in.Service.Weight, in.Health)
	}
	tw.Flush()
}

func newRegisterCmd(g *globals) *cobra.Command {
	var s catalog.Service
	var kind, target string
	var chk catalog.CheckDef
	cmd := &cobra.Command{
		Use:   "register NAME --port PORT [--tag T]... [--check tcp|http|exec|ttl --target ...]",
		Short: "Register a service of this host in the catalog (kept across restarts)",
		Long: `Register a service of this host. Its instances are found from every host by
DNS (NAME.service.weft, _NAME._tcp.service.weft) and by 'weft resolve NAME'.

Checks: tcp (connect to --target host:port, default the service's port on this host),
http (GET --target URL, 2xx passes), exec (run --target command, exit 0 passes),
ttl (the service must call 'weft renew NAME' within --ttl).

Examples:
  weft register web --port 8080 --check http --target http://127.0.0.1:8080/health
  weft register db --port 5432 --check tcp --interval 5s
  weft register batch --port 9000 --check ttl --ttl 30s`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Name = args[0]
			if kind != "" {
				k, err := catalog.ParseCheckKind(kind)
				if err != nil {
					return err
				}
				chk.Kind = k
				chk.Target = target
				if k == catalog.CheckTCP && target == "" {
					chk.Target = fmt.Sprintf("127.0.0.1:%d", s.Port)
				}
				s.Check = &chk
			}
			if err := s.Normalized().Validate(); err != nil {
				return err
			}
			ctx, cancel := commandContext(15 * time.Second)
			defer cancel()
			if err := g.client().Register(ctx, s); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "registered %s (port %d)\n", s.Name, s.Port)
			return nil
		},
	}
	f := cmd.Flags()
	f.Uint16Var(&s.Port, "port", 0, "the service's port (required)")
	f.StringSliceVar(&s.Tags, "tag", nil, "a tag (repeatable)")
	f.Uint16Var(&s.Weight, "weight", 1, "SRV weight and share in weighted balancing")
	f.TextVar(&s.Address, "address", netip.Addr{}, "the `ip` address the service listens on when not this host's overlay address (a container's, in this host's subnet)")
	f.StringVar(&kind, "check", "", "health check kind: tcp, http, exec or ttl")
	f.StringVar(&target, "target", "", "check target: host:port (tcp), URL (http), command (exec)")
	f.DurationVar(&chk.Interval, "interval", 0, "check interval (default 10s)")
	f.DurationVar(&chk.Timeout, "timeout", 0, "check timeout (default 2s)")
	f.DurationVar(&chk.TTL, "ttl", 0, "ttl check: how long a renewal keeps it passing")
	f.IntVar(&chk.FailuresBeforeCritical, "failures-before-critical", 0, "consecutive failures before critical (default 3)")
	f.IntVar(&chk.PassesBeforePassing, "passes-before-passing", 0, "consecutive passes before passing again (default 2)")
	_ = cmd.MarkFlagRequired("port")
	return cmd
}

func newDeregisterCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "deregister NAME",
		Short: "Remove a service of this host from the catalog",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(15 * time.Second)
			defer cancel()
			if err := g.client().Deregister(ctx, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "deregistered %s\n", args[0])
			return nil
		},
	}
}

func newRenewCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "renew NAME",
		Short: "Renew the ttl check of a service of this host",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx, cancel := commandContext(15 * time.Second)
			defer cancel()
			return g.client().Renew(ctx, args[0])
		},
	}
}

func newWatchCmd(g *globals) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "watch services",
		Short: "Print every change of the service catalog as it happens (Ctrl-C stops)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if args[0] != "services" {
				return fmt.Errorf("weft watch %s: only 'services' can be watched", args[0])
			}
			ctx, cancel := commandContext(0)
			defer cancel()
			c := g.client()
			out := cmd.OutOrStdout()
			r, err := c.Services(ctx, 0, 0)
			if err != nil {
				return err
			}
			prev := r.Instances
			fmt.Fprintf(out, "%s index %d: %d instance(s)\n", time.Now().Format(time.TimeOnly), r.Index, len(r.Instances))
			idx := r.Index
			for {
				r, err := c.Services(ctx, idx, wait)
				if ctx.Err() != nil {
					return nil
				}
				if err != nil {
					return err
				}
				if r.Index == idx {
					continue
				}
				idx = r.Index
				changes := catalog.DiffInstances(prev, r.Instances)
				prev = r.Instances
				if g.json {
					if err := printJSON(out, changes); err != nil {
						return err
					}
					continue
				}
				for _, ch := range changes {
					fmt.Fprintf(out, "%s index %d: %s\n", time.Now().Format(time.TimeOnly), idx, changeLine(ch))
				}
			}
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 30*time.Second, "how long one blocking query waits")
	addJSONFlag(cmd, g)
	return cmd
}

func instanceText(i catalog.Instance) string {
	return fmt.Sprintf("%s on %s (%s:%d)", i.Service.Name, i.Node, i.Addr, i.Service.Port)
}

// changeLine prints one watch change: "+ web on a (10.42.1.1:8080) passing".
func changeLine(ch catalog.InstanceChange) string {
	switch ch.Kind {
	case catalog.InstanceAdded:
		return "+ " + instanceText(ch.Instance) + " " + ch.Instance.Health.String()
	case catalog.InstanceRemoved:
		return "- " + instanceText(ch.Instance)
	}
	old := "?"
	if ch.Old != nil {
		old = ch.Old.Health.String()
	}
	return "~ " + instanceText(ch.Instance) + " " + old + " → " + ch.Instance.Health.String()
}

func newResolveCmd(g *globals) *cobra.Command {
	var strategy string
	var all bool
	var count int
	cmd := &cobra.Command{
		Use:   "resolve NAME",
		Short: "Pick a healthy instance of a service (client-side balancing) and print ADDRESS:PORT",
		Long: `Resolve a service through the local agent and pick one healthy instance, by weighted
random (the service weights) or round robin; --count N prints N picks, --all every instance.
Programs can do the same with the Go package github.com/weftnet/weft/discovery/catalog/balance.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			st, err := balance.ParseStrategy(strategy)
			if err != nil {
				return err
			}
			ctx, cancel := commandContext(10 * time.Second)
			defer cancel()
			inst, err := g.client().Instances(ctx, args[0], false)
			if err != nil {
				return err
			}
			if len(inst) == 0 {
				return fmt.Errorf("no healthy instance of %q (weft services lists the catalog)", args[0])
			}
			out := cmd.OutOrStdout()
			if all {
				if g.json {
					return printJSON(out, inst)
				}
				printInstances(cmd, inst)
				return nil
			}
			cands := make([]balance.Instance, len(inst))
			for i, in := range inst {
				cands[i] = balance.Instance{Addr: netip.AddrPortFrom(in.Addr, in.Service.Port), Weight: int(in.Service.Weight)}
			}
			p := balance.New(st, cands)
			picks := make([]string, 0, count)
			for i := 0; i < count; i++ {
				pick, err := p.Pick()
				if err != nil {
					return err
				}
				picks = append(picks, pick.Addr.String())
			}
			if g.json {
				return printJSON(out, picks)
			}
			for _, pk := range picks {
				fmt.Fprintln(out, pk)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&strategy, "strategy", "weighted-random", "weighted-random or round-robin")
	cmd.Flags().IntVar(&count, "count", 1, "how many picks to print")
	cmd.Flags().BoolVar(&all, "all", false, "print every healthy instance instead of picking")
	addJSONFlag(cmd, g)
	return cmd
}
