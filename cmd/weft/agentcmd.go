package main

import (
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/weftnet/weft/agent"
)

func newAgentCmd(g *globals) *cobra.Command {
	var cfgPath string
	d := agent.DefaultConfig()
	var f struct {
		name, mode, encryption, iface, stateDir, keyFile      string
		clusterCIDR, subnet, address                          string
		gossipBind, gossipAdvertise, gossipKey, gossipKeyFile string
		socket, metrics, dnsDomain, dnsUpstream, logLevel     string
		port, mtu                                             int
		vni                                                   uint32
		insecure, noGossip, fast, noDNS, arpSuppression       bool
		join, dnsListen                                       []string
		dnsTTL                                                time.Duration
	}
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the weft agent (the daemon) on this host",
		Long: `Run the weft agent: it opens the TUN (l3) or TAP (l2) device, joins the gossip cluster,
carries the host's overlay traffic to its peers, encrypted, and serves the control API,
the metrics and DNS.

The configuration is the embedded defaults, then the YAML file given with -c, then the flags
given on the command line. The private key is generated on first start into the state
directory. Gossip needs a key (weft keygen --gossip) unless --insecure-gossip is given.

Example (first host, then a second one joining it):
  weft agent --gossip-key "$(cat gossip.key)"
  weft agent --gossip-key "$(cat gossip.key)" --join 192.0.2.1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := agent.DefaultConfig()
			if cfgPath != "" {
				var err error
				if cfg, err = agent.LoadConfig(cfgPath); err != nil {
					return err
				}
			}
			fl := cmd.Flags()
			set := func(name string, apply func()) {
				if fl.Changed(name) {
					apply()
				}
			}
			var perr error
			prefix := func(s string, dst *agent.Prefix, flag string) {
				p, err := netip.ParsePrefix(s)
				if err != nil {
					perr = fmt.Errorf("--%s %q: not a CIDR prefix (like 10.42.0.0/16)", flag, s)
					return
				}
				dst.Prefix = p.Masked()
			}
			set("name", func() { cfg.Name = f.name })
			set("mode", func() { cfg.Mode = f.mode })
			set("encryption", func() { cfg.Encryption = f.encryption })
			set("interface", func() { cfg.Interface = f.iface })
			set("listen-port", func() { cfg.ListenPort = f.port })
			set("mtu", func() { cfg.MTU = f.mtu })
			set("vni", func() { cfg.VNI = f.vni })
			set("state-dir", func() { cfg.StateDir = f.stateDir })
			set("private-key-file", func() { cfg.PrivateKeyFile = f.keyFile })
			set("cluster-cidr", func() { prefix(f.clusterCIDR, &cfg.ClusterCIDR, "cluster-cidr") })
			set("subnet", func() { prefix(f.subnet, &cfg.Subnet, "subnet") })
			set("address", func() {
				a, err := netip.ParseAddr(f.address)
				if err != nil {
					perr = fmt.Errorf("--address %q: not an IP address", f.address)
				}
				cfg.Address.Addr = a
			})
			set("arp-suppression", func() { cfg.ARPSuppression = f.arpSuppression })
			set("gossip-bind", func() { cfg.Gossip.Bind = f.gossipBind })
			set("gossip-advertise", func() { cfg.Gossip.Advertise = f.gossipAdvertise })
			set("gossip-key", func() { cfg.Gossip.Key = f.gossipKey })
			set("gossip-key-file", func() { cfg.Gossip.KeyFile = f.gossipKeyFile })
			set("insecure-gossip", func() { cfg.Gossip.Insecure = f.insecure })
			set("no-gossip", func() { cfg.Gossip.Disabled = f.noGossip })
			set("gossip-fast", func() { cfg.Gossip.Fast = f.fast })
			set("join", func() { cfg.Gossip.Join = append(cfg.Gossip.Join, f.join...) })
			if fl.Changed("socket") || os.Getenv("WEFT_SOCKET") != "" {
				cfg.ControlSocket = g.socket // the flag, or WEFT_SOCKET as for the other commands
			}
			set("metrics-listen", func() { cfg.MetricsListen = f.metrics })
			set("dns-listen", func() { cfg.DNS.Listen = f.dnsListen })
			set("dns-domain", func() { cfg.DNS.Domain = f.dnsDomain })
			set("dns-ttl", func() { cfg.DNS.TTL.Duration = f.dnsTTL })
			set("dns-upstream", func() { cfg.DNS.Upstream = f.dnsUpstream })
			set("no-dns", func() { cfg.DNS.Disabled = f.noDNS })
			set("log-level", func() { cfg.LogLevel = f.logLevel })
			if perr != nil {
				return perr
			}
			if err := cfg.Validate(); err != nil {
				if cfgPath != "" {
					return fmt.Errorf("%s: %w", cfgPath, err)
				}
				return err
			}
			log := agent.NewLogger(os.Stderr, cfg.LogLevel)
			a, err := agent.New(cfg, log)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return a.Run(ctx)
		},
	}
	fl := cmd.Flags()
	fl.StringVarP(&cfgPath, "config", "c", "", "YAML configuration file (see ARCHITECTURE.md, \"Agent configuration\")")
	fl.StringVar(&f.name, "name", d.Name, "node name in gossip")
	fl.StringVar(&f.mode, "mode", d.Mode, "l3 (TUN, IP) or l2 (TAP, Ethernet)")
	fl.StringVar(&f.encryption, "encryption", d.Encryption, "wireguard, or none (l2 only: plain RFC 7348 VXLAN for trusted networks)")
	fl.StringVar(&f.iface, "interface", d.Interface, "TUN/TAP device name")
	fl.IntVar(&f.port, "listen-port", 0, "UDP data port (default 51820, or 4789 with --encryption none)")
	fl.IntVar(&f.mtu, "mtu", 0, "device MTU (default: the largest that fits a 1500-byte underlay: 1412 in l3)")
	fl.Uint32Var(&f.vni, "vni", d.VNI, "VXLAN network identifier of the overlay")
	fl.StringVar(&f.stateDir, "state-dir", d.StateDir, "state directory: private key, chosen subnet, services")
	fl.StringVar(&f.keyFile, "private-key-file", "", "private key file (default STATE_DIR/private.key, generated when missing)")
	fl.StringVar(&f.clusterCIDR, "cluster-cidr", d.ClusterCIDR.String(), "overlay range cut into per-host /24 subnets")
	fl.StringVar(&f.subnet, "subnet", "", "static /24 subnet for this host (wins over allocation)")
	fl.StringVar(&f.address, "address", "", "overlay address of this host (default: .1 of its subnet)")
	fl.BoolVar(&f.arpSuppression, "arp-suppression", false, "l2 plain: answer ARP for gossip members' addresses locally")
	fl.StringVar(&f.gossipBind, "gossip-bind", d.Gossip.Bind, "gossip listen address (TCP and UDP)")
	fl.StringVar(&f.gossipAdvertise, "gossip-advertise", "", "address other members reach this host at")
	fl.StringVar(&f.gossipKey, "gossip-key", "", "base64 32-byte gossip encryption key (weft keygen --gossip)")
	fl.StringVar(&f.gossipKeyFile, "gossip-key-file", "", "file holding the gossip key (mode 0600)")
	fl.BoolVar(&f.insecure, "insecure-gossip", false, "allow unencrypted gossip (trusted test networks only)")
	fl.BoolVar(&f.noGossip, "no-gossip", false, "no gossip: static peers only")
	fl.BoolVar(&f.fast, "gossip-fast", false, "fast gossip timers (labs: quicker failure detection, more traffic)")
	fl.StringSliceVar(&f.join, "join", nil, "members to join at start (repeatable)")
	fl.StringVar(&f.metrics, "metrics-listen", "", "serve Prometheus metrics on this address (e.g. 127.0.0.1:9101)")
	fl.StringSliceVar(&f.dnsListen, "dns-listen", d.DNS.Listen, "DNS listen addresses (overlay:PORT = the overlay address)")
	fl.StringVar(&f.dnsDomain, "dns-domain", d.DNS.Domain, "DNS zone answered")
	fl.DurationVar(&f.dnsTTL, "dns-ttl", d.DNS.TTL.Duration, "TTL of DNS answers")
	fl.StringVar(&f.dnsUpstream, "dns-upstream", "", "forward other names to this resolver (default: REFUSED)")
	fl.BoolVar(&f.noDNS, "no-dns", false, "do not serve DNS")
	fl.StringVar(&f.logLevel, "log-level", d.LogLevel, "debug, info, warn or error")
	fl.SortFlags = false
	return cmd
}
