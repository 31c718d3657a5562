package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"reflect"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/weftnet/weft/agent"
	"github.com/weftnet/weft/agent/config"
)

func newAgentCmd(g *globals) *cobra.Command {
	var cfgPath string
	var checkOnly bool
	var flagged *config.Config // what the flags write into; see agentFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the weft agent (the daemon) on this host",
		Long: `Run the weft agent: it opens the TUN (l3) or TAP (l2) device, joins the gossip cluster,
carries the host's overlay traffic to its peers, encrypted, and serves the control API,
the metrics and DNS.

The configuration is the embedded defaults, then the YAML file given with -c, then the flags
given on the command line. The private key is generated on first start into the state
directory. Members need a certificate of the cluster CA (--trust ca, the default): an agent
with none that joins nobody creates a new cluster here; one that joins needs --join-token.

SIGHUP (systemctl reload weft) reloads what can change at run time: log_level and
services; it logs what it reloaded and which changed settings need a restart.

Example (the first host creates the cluster and its CA; every other host joins with a token
that ` + "`weft token create`" + ` printed on the first):
  weft init && weft agent
  weft agent --join-token TOKEN --retry-join 192.0.2.1

Without a CA (labs: every holder of the gossip key is trusted to claim addresses):
  weft keygen --gossip > /etc/weft/gossip.key && chmod 600 /etc/weft/gossip.key
  weft agent --trust shared-key --gossip-key-file /etc/weft/gossip.key [--retry-join 192.0.2.1]

Check a configuration without starting:
  weft agent --check -c /etc/weft/weft.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			load := func() (config.Config, error) {
				cfg := config.DefaultConfig()
				if cfgPath != "" {
					var err error
					if cfg, err = config.LoadConfig(cfgPath); err != nil {
						return cfg, err
					}
				}
				applyFlags(cmd.Flags(), &cfg, flagged)
				if cmd.Flags().Changed("socket") || os.Getenv("WEFT_SOCKET") != "" {
					cfg.ControlSocket = g.socket // the flag, or WEFT_SOCKET as for the other commands
				}
				agent.FollowUnderlay(&cfg) // the mtu follows the underlay, or must fit it
				check := cfg.Validate
				if checkOnly {
					check = cfg.Check
				}
				if err := check(); err != nil {
					if cfgPath != "" {
						return cfg, fmt.Errorf("%s: %w", cfgPath, err)
					}
					return cfg, err
				}
				return cfg, nil
			}
			cfg, err := load()
			if err != nil {
				return err
			}
			if checkOnly {
				return printCheck(cmd.OutOrStdout(), cfgPath, cfg)
			}
			log, level := agent.NewLogging(os.Stderr, cfg.LogFormat, cfg.LogLevel)
			a, err := agent.New(cfg, log)
			if err != nil {
				return err
			}
			a.SetReload(load, level)
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// SIGHUP reloads (systemctl reload); it no longer ends the agent without its teardown.
			hup := make(chan os.Signal, 1)
			signal.Notify(hup, syscall.SIGHUP)
			defer signal.Stop(hup)
			go func() {
				for {
					select {
					case <-ctx.Done():
						return
					case <-hup:
						log.Info("SIGHUP: reloading", "config", cfgPath)
						_, _, _ = a.Reload() // logs what it reloaded and what failed
					}
				}
			}()
			return a.Run(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&cfgPath, "config", "c", "", "YAML configuration file (see ARCHITECTURE.md, \"Agent configuration\")")
	fl.BoolVar(&checkOnly, "check", false, "check the configuration (file and flags) and exit: opens no device and no socket (it reads the routing table for the underlay's MTU)")
	flagged = agentFlags(fl)
	fl.SortFlags = false
	return cmd
}

// agentFlags registers the flag of every setting in config.Settings (but the global --socket)
// on fs. They write into the returned Config, which starts as config.DefaultConfig so that
// --help shows the defaults; applyFlags copies the flags given over the file's configuration.
func agentFlags(fs *pflag.FlagSet) *config.Config {
	flagged := config.DefaultConfig()
	for _, s := range config.Settings {
		if !s.Global {
			bindSetting(fs, s, &flagged)
		}
	}
	return &flagged
}

// bindSetting registers the flag of s on fs, writing into s's field of c (whose value is the
// default shown).
func bindSetting(fs *pflag.FlagSet, s config.Setting, c *config.Config) {
	switch p := s.Field(c).(type) {
	case *string:
		fs.StringVar(p, s.Flag, *p, s.Help)
	case *int:
		fs.IntVar(p, s.Flag, *p, s.Help)
	case *uint32:
		fs.Uint32Var(p, s.Flag, *p, s.Help)
	case *bool:
		fs.BoolVar(p, s.Flag, *p, s.Help)
	case *[]string:
		if s.Append {
			*p = nil // appended to the file's list: the default list is not repeated
		}
		fs.StringSliceVar(p, s.Flag, *p, s.Help)
	case *config.Duration:
		fs.DurationVar(&p.Duration, s.Flag, p.Duration, s.Help)
	case *config.Prefix:
		fs.Var(prefixValue{p}, s.Flag, s.Help)
	case *config.Addr:
		fs.Var(addrValue{p}, s.Flag, s.Help)
	case *[]config.ForwardConfig:
		*p = nil
		fs.Var(&relayList[config.ForwardConfig]{list: p, parse: config.ParseForward, typ: "listen=to"}, s.Flag, s.Help)
	case *[]config.ExposeConfig:
		*p = nil
		fs.Var(&relayList[config.ExposeConfig]{list: p, parse: config.ParseExpose, typ: "port=to"}, s.Flag, s.Help)
	default:
		panic(fmt.Sprintf("config.Settings %q: no flag for a field of type %T", s.Key, p))
	}
}

// applyFlags copies every setting whose flag was given from flagged into cfg (or, for an
// Append setting, adds its values to cfg's).
func applyFlags(fs *pflag.FlagSet, cfg, flagged *config.Config) {
	for _, s := range config.Settings {
		if s.Global || !fs.Changed(s.Flag) {
			continue
		}
		dst, src := reflect.ValueOf(s.Field(cfg)).Elem(), reflect.ValueOf(s.Field(flagged)).Elem()
		if s.Append {
			dst.Set(reflect.AppendSlice(dst, src))
			continue
		}
		dst.Set(src)
	}
}

// prefixValue is an config.Prefix as a flag ("10.42.0.0/16", masked).
type prefixValue struct{ p *config.Prefix }

func (v prefixValue) Type() string { return "prefix" }

func (v prefixValue) String() string {
	if v.p == nil || !v.p.IsValid() {
		return ""
	}
	return v.p.Prefix.String()
}

func (v prefixValue) Set(s string) error {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return fmt.Errorf("%q is not a CIDR prefix (like 10.42.0.0/16)", s)
	}
	v.p.Prefix = p.Masked()
	return nil
}

// addrValue is an config.Addr as a flag.
type addrValue struct{ a *config.Addr }

func (v addrValue) Type() string { return "ip" }

func (v addrValue) String() string {
	if v.a == nil || !v.a.IsValid() {
		return ""
	}
	return v.a.Addr.String()
}

func (v addrValue) Set(s string) error {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return fmt.Errorf("%q is not an IP address", s)
	}
	v.a.Addr = a
	return nil
}

// relayList is a repeatable flag of netstack relays (--forward, --expose): each use parses one
// entry and appends it.
type relayList[T fmt.Stringer] struct {
	list  *[]T
	parse func(string) (T, error)
	typ   string
}

func (v *relayList[T]) Type() string { return v.typ }

// String is "" while empty, so --help shows no "(default [])".
func (v *relayList[T]) String() string {
	if v.list == nil || len(*v.list) == 0 {
		return ""
	}
	parts := make([]string, len(*v.list))
	for i, e := range *v.list {
		parts[i] = e.String()
	}
	return "[" + strings.Join(parts, ",") + "]"
}

func (v *relayList[T]) Set(s string) error {
	e, err := v.parse(s)
	if err != nil {
		return err
	}
	*v.list = append(*v.list, e)
	return nil
}
