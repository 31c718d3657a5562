package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"reflect"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/identity"
	"github.com/weftnet/weft/policy"
)

// Config is the agent's whole configuration: a YAML file (weft.yaml) over the embedded
// defaults, then command-line flags over both. Every field is documented in
// ARCHITECTURE.md ("Agent configuration") and in `weft agent --help`.
type Config struct {
	// Name is this host's node name in gossip; default: the hostname.
	Name string `yaml:"name"`
	// Mode is "l3" (a TUN device carrying IP) or "l2" (a TAP device carrying Ethernet).
	Mode string `yaml:"mode"`
	// Encryption is "wireguard" (default) or "none" (L2 only: plain RFC 7348 VXLAN).
	Encryption string `yaml:"encryption"`
	// Interface is the name of the TUN/TAP device.
	Interface string `yaml:"interface"`
	// ListenPort is the UDP data port (0: the default for the encryption: 51820, or 4789 plain).
	ListenPort int `yaml:"listen_port"`
	// MTU of the device; 0 picks the largest that fits a 1500-byte underlay after all headers.
	MTU int `yaml:"mtu"`
	// VNI is the VXLAN network identifier of this overlay; packets of another VNI are dropped.
	VNI uint32 `yaml:"vni"`
	// StateDir keeps the private key (0600), the chosen subnet and local service registrations.
	StateDir string `yaml:"state_dir"`
	// PrivateKeyFile overrides StateDir/private.key.
	PrivateKeyFile string `yaml:"private_key_file"`
	// ClusterCIDR is cut into per-host /24 subnets.
	ClusterCIDR Prefix `yaml:"cluster_cidr"`
	// Subnet is a static subnet for this host; it wins over allocation.
	Subnet Prefix `yaml:"subnet"`
	// Address is this host's overlay address; default: the first host address of Subnet.
	Address Addr `yaml:"address"`
	// ARPSuppression (l2, encryption: none) answers ARP requests for the overlay addresses
	// of gossip members locally instead of flooding them.
	ARPSuppression bool `yaml:"arp_suppression"`
	// TapOffload (l2) opens the TAP with a virtio-net header and TSO and checksum offload
	// (super-frames of up to 64 frames per syscall); false, or a kernel that refuses them,
	// opens it through songgao/water, one frame per syscall (tap.OpenBest).
	TapOffload bool `yaml:"tap_offload"`
	// Plain configures plain L2 (encryption: none).
	Plain PlainConfig `yaml:"plain"`
	// Peers are static peers, used with or without gossip.
	Peers []PeerConfig `yaml:"peers"`
	// Clients configures stock WireGuard clients (`weft client add`, clients.go).
	Clients ClientsConfig `yaml:"clients"`
	// Gossip configures Serf membership.
	Gossip GossipConfig `yaml:"gossip"`
	// ControlSocket is the unix socket of the control API (mode 0600).
	ControlSocket string `yaml:"control_socket"`
	// MetricsListen enables Prometheus metrics on this TCP address (empty: off).
	MetricsListen string `yaml:"metrics_listen"`
	// Debug holds diagnostics that are off by default (pprof.go).
	Debug DebugConfig `yaml:"debug"`
	// DNS configures the service-catalog DNS server.
	DNS DNSConfig `yaml:"dns"`
	// ConsulAPI serves the Consul-compatible HTTP API (off unless listen is set).
	ConsulAPI ConsulAPIConfig `yaml:"consul_api"`
	// CNI is container networking (cni.go): the bridge side of the weft-cni plugin.
	CNI CNIConfig `yaml:"cni"`
	// Services are registered at start (in addition to those kept in StateDir).
	Services []catalog.Service `yaml:"services"`
	// LogLevel is debug, info, warn or error; SIGHUP reloads it.
	LogLevel string `yaml:"log_level"`
	// Groups are this host's groups for network policy, gossiped as they are: without a CA
	// they are only as trustworthy as the gossip key (policy.go).
	Groups []string `yaml:"groups"`
	// PolicyFile is a local network policy document; it wins over signed documents from
	// gossip, which are still kept and passed on.
	PolicyFile string `yaml:"policy_file"`
	// PolicyCAFile holds the CA certificates (ca.crt) whose signature a policy spread by
	// gossip must carry; without it every gossiped policy is refused.
	PolicyCAFile string `yaml:"policy_ca_file"`
	// PolicyMaxFlows bounds the policy's flow table (allocated at start, about 160 bytes a
	// flow); PolicyMaxFlowsPerPeer bounds the flows one peer may have opened into this host
	// (0: no quota), so that one peer cannot fill the table and push out everyone else's.
	PolicyMaxFlows        int `yaml:"policy_max_flows"`
	PolicyMaxFlowsPerPeer int `yaml:"policy_max_flows_per_peer"`
	// Netstack runs the l3 datapath over a userspace TCP/IP stack instead of a TUN: no root,
	// no /dev/net/tun; the host reaches the overlay through NetstackProxy and Forward
	// (netstack.go).
	Netstack bool `yaml:"netstack"`
	// NetstackProxy configures the loopback SOCKS5 and HTTP proxies of netstack mode.
	NetstackProxy NetstackProxyConfig `yaml:"netstack_proxy"`
	// Forward relays local ports to overlay destinations (netstack mode).
	Forward []ForwardConfig `yaml:"forward"`
	// Expose relays ports of the overlay address to local addresses (netstack mode).
	Expose []ExposeConfig `yaml:"expose"`
	// LogFormat is text (logfmt, the default) or json (one object a line).
	LogFormat string `yaml:"log_format"`

	serviceLines []int // the line of each entry of Services in the file (configcheck.go)
	// PKI configures the cluster CA (trust.go): with pki.ca set, members need a certificate.
	PKI PKIConfig `yaml:"pki"`
}

// PKIConfig names the cluster CA's files (`weft ca init`, `weft ca sign`). SIGHUP and
// `weft reload` re-read all three.
type PKIConfig struct {
	// CA is the PEM file of the trusted CA certificate(s); empty: no CA, gossip rules only.
	CA string `yaml:"ca"`
	// Cert is this host's certificate, signed by a CA of CA for its name and public key.
	Cert string `yaml:"cert"`
	// Blocklist is a file of revoked certificate fingerprints, one per line (optional).
	Blocklist string `yaml:"blocklist"`
}

// PeerConfig is one static peer.
type PeerConfig struct {
	PublicKey    string   `yaml:"public_key"`
	PresharedKey string   `yaml:"preshared_key"`
	Endpoint     AddrPort `yaml:"endpoint"`
	AllowedIPs   []Prefix `yaml:"allowed_ips"`
	Keepalive    Duration `yaml:"persistent_keepalive"`
	// Framing is "weft" (default: VXLAN inside) or "wireguard": a stock WireGuard peer
	// (phone, laptop, wg-quick) whose transport messages carry bare IP packets. L3 only.
	Framing string `yaml:"framing"`
	line    int
}

// PlainConfig configures plain L2 (encryption: none).
type PlainConfig struct {
	// LearnUnknownVTEPs accepts VXLAN from VTEPs that are neither static peers nor gossip
	// members, and learns their MACs (a Linux vxlan device's `learning`). Default false:
	// their packets are dropped as unknown_vtep.
	LearnUnknownVTEPs bool `yaml:"learn_unknown_vteps"`
}

// GossipConfig configures Serf.
type GossipConfig struct {
	// Disabled turns gossip off: peers come from the static list only.
	Disabled bool `yaml:"disabled"`
	// Bind is the gossip listen address (TCP and UDP).
	Bind string `yaml:"bind"`
	// Advertise is the address other members reach this host at (default: derived from Bind).
	Advertise string `yaml:"advertise"`
	// Key is the base64 32-byte gossip encryption key (`weft keygen --gossip`).
	Key string `yaml:"key"`
	// KeyFile holds Key instead (must not be readable by group or others).
	KeyFile string `yaml:"key_file"`
	// Insecure allows gossip without encryption (trusted test networks only).
	Insecure bool `yaml:"insecure"`
	// Join lists members to join at start (tried once; see RetryJoin).
	Join []string `yaml:"join"`
	// RetryJoin lists members to join in the background until one answers (Consul's
	// retry_join): hosts that boot together converge whatever their order.
	RetryJoin []string `yaml:"retry_join"`
	// RetryInterval is the wait between retry_join attempts.
	RetryInterval Duration `yaml:"retry_interval"`
	// RetryMax is how many retry_join attempts are made before the agent gives up and
	// exits (0: forever).
	RetryMax int `yaml:"retry_max"`
	// Fast selects fast gossip timers (for labs and tests: quicker failure detection, more traffic).
	Fast bool `yaml:"fast"`
	// AllowedStatic lists prefixes within which members may announce a static subnet outside
	// the cluster CIDR (default none: a member's subnet is one /24 of the cluster CIDR).
	AllowedStatic []string `yaml:"allowed_static"`
}

// DNSConfig configures the DNS server.
type DNSConfig struct {
	// Listen addresses (UDP and TCP); "overlay:PORT" means the overlay address.
	Listen []string `yaml:"listen"`
	// Domain is the zone answered (default "weft.").
	Domain string `yaml:"domain"`
	// TTL of answers.
	TTL Duration `yaml:"ttl"`
	// Upstream forwards names outside Domain (empty: REFUSED).
	Upstream string `yaml:"upstream"`
	// Disabled turns the DNS server off.
	Disabled bool `yaml:"disabled"`
	// ConsulAlias answers the names of Domain under "consul." too.
	ConsulAlias bool `yaml:"consul_alias"`
	// ResolvedDisabled: do not configure systemd-resolved for the device's link.
	ResolvedDisabled bool `yaml:"resolved_disabled"`
}

// ConsulAPIConfig configures the Consul-compatible HTTP API (agent/consul.go).
type ConsulAPIConfig struct {
	// Listen addresses (TCP); "overlay:PORT" means the overlay address. Empty: off.
	Listen []string `yaml:"listen"`
	// TokenFile holds the token that writes from other hosts must carry (mode 0600);
	// without it only loopback connections may write.
	TokenFile string `yaml:"token_file"`
	// Datacenter is the datacenter name answered (Consul's tools assume "dc1").
	Datacenter string `yaml:"datacenter"`
}

// Setting is one setting of Config that is also a flag of `weft agent`: declared once here,
// with its YAML key, its flag and its help; its default is DefaultConfig's value of the field.
// A test holds the table and Config's YAML keys together, another the table and the flags.
type Setting struct {
	// Key is the YAML key, dotted below the top level ("gossip.bind").
	Key string
	// Flag is the flag's name without dashes.
	Flag string
	// Help is the flag's usage line.
	Help string
	// Field points at the setting in c: *string, *int, *uint32, *bool, *[]string, *Prefix,
	// *Addr or *Duration.
	Field func(c *Config) any
	// Append: the flag's values are added to those of the file instead of replacing them.
	Append bool
	// Global: the flag is the CLI's global one (--socket, also WEFT_SOCKET), not the agent
	// command's own.
	Global bool
}

// Settings are the scalar settings of Config, in the order `weft agent --help` lists them.
// Lists of records (peers, services) are YAML only.
var Settings = []Setting{
	{Key: "name", Flag: "name", Help: "node name in gossip", Field: func(c *Config) any { return &c.Name }},
	{Key: "mode", Flag: "mode", Help: "l3 (TUN, IP) or l2 (TAP, Ethernet)", Field: func(c *Config) any { return &c.Mode }},
	{Key: "encryption", Flag: "encryption", Help: "wireguard, or none (l2 only: plain RFC 7348 VXLAN for trusted networks)", Field: func(c *Config) any { return &c.Encryption }},
	{Key: "interface", Flag: "interface", Help: "TUN/TAP device name", Field: func(c *Config) any { return &c.Interface }},
	{Key: "listen_port", Flag: "listen-port", Help: "UDP data port (default 51820, or 4789 with --encryption none)", Field: func(c *Config) any { return &c.ListenPort }},
	{Key: "mtu", Flag: "mtu", Help: "device MTU (default: the largest that fits a 1500-byte underlay: 1412 in l3)", Field: func(c *Config) any { return &c.MTU }},
	{Key: "vni", Flag: "vni", Help: "VXLAN network identifier of the overlay", Field: func(c *Config) any { return &c.VNI }},
	{Key: "clients.range", Flag: "clients-range", Help: "addresses for stock WireGuard clients: FIRST-LAST or a prefix inside the host's /24 (default .200-.254)", Field: func(c *Config) any { return &c.Clients.Range }},
	{Key: "state_dir", Flag: "state-dir", Help: "state directory: private key, chosen subnet, services", Field: func(c *Config) any { return &c.StateDir }},
	{Key: "private_key_file", Flag: "private-key-file", Help: "private key file (default STATE_DIR/private.key, generated when missing)", Field: func(c *Config) any { return &c.PrivateKeyFile }},
	{Key: "cluster_cidr", Flag: "cluster-cidr", Help: "overlay range cut into per-host /24 subnets", Field: func(c *Config) any { return &c.ClusterCIDR }},
	{Key: "subnet", Flag: "subnet", Help: "static /24 subnet for this host (wins over allocation)", Field: func(c *Config) any { return &c.Subnet }},
	{Key: "address", Flag: "address", Help: "overlay address of this host (default: .1 of its subnet)", Field: func(c *Config) any { return &c.Address }},
	{Key: "arp_suppression", Flag: "arp-suppression", Help: "l2 plain: answer ARP for gossip members' addresses locally", Field: func(c *Config) any { return &c.ARPSuppression }},
	{Key: "tap_offload", Flag: "tap-offload", Help: "l2: TSO and checksum offload on the TAP (false: frame by frame through water; also the fallback when the kernel refuses)", Field: func(c *Config) any { return &c.TapOffload }},
	{Key: "plain.learn_unknown_vteps", Flag: "plain-learn-unknown-vteps", Help: "l2 plain: accept VXLAN from VTEPs that are no static peer or gossip member", Field: func(c *Config) any { return &c.Plain.LearnUnknownVTEPs }},
	{Key: "gossip.bind", Flag: "gossip-bind", Help: "gossip listen address (TCP and UDP)", Field: func(c *Config) any { return &c.Gossip.Bind }},
	{Key: "gossip.advertise", Flag: "gossip-advertise", Help: "address other members reach this host at", Field: func(c *Config) any { return &c.Gossip.Advertise }},
	{Key: "gossip.key", Flag: "gossip-key", Help: "base64 32-byte gossip encryption key (weft keygen --gossip)", Field: func(c *Config) any { return &c.Gossip.Key }},
	{Key: "gossip.key_file", Flag: "gossip-key-file", Help: "file holding the gossip key (mode 0600)", Field: func(c *Config) any { return &c.Gossip.KeyFile }},
	{Key: "gossip.insecure", Flag: "insecure-gossip", Help: "allow unencrypted gossip (trusted test networks only)", Field: func(c *Config) any { return &c.Gossip.Insecure }},
	{Key: "gossip.disabled", Flag: "no-gossip", Help: "no gossip: static peers only", Field: func(c *Config) any { return &c.Gossip.Disabled }},
	{Key: "gossip.fast", Flag: "gossip-fast", Help: "fast gossip timers (labs: quicker failure detection, more traffic)", Field: func(c *Config) any { return &c.Gossip.Fast }},
	{Key: "gossip.join", Flag: "join", Help: "members to join at start (repeatable)", Field: func(c *Config) any { return &c.Gossip.Join }, Append: true},
	{Key: "gossip.retry_join", Flag: "retry-join", Help: "members to join in the background until one answers (repeatable)", Field: func(c *Config) any { return &c.Gossip.RetryJoin }, Append: true},
	{Key: "gossip.retry_interval", Flag: "retry-interval", Help: "wait between retry_join attempts", Field: func(c *Config) any { return &c.Gossip.RetryInterval }},
	{Key: "gossip.retry_max", Flag: "retry-max", Help: "retry_join attempts before the agent gives up and exits (0: forever)", Field: func(c *Config) any { return &c.Gossip.RetryMax }},
	{Key: "control_socket", Flag: "socket", Help: "the agent's control socket (env WEFT_SOCKET)", Field: func(c *Config) any { return &c.ControlSocket }, Global: true},
	{Key: "metrics_listen", Flag: "metrics-listen", Help: "serve Prometheus metrics on this address (e.g. 127.0.0.1:9101)", Field: func(c *Config) any { return &c.MetricsListen }},
	{Key: "debug.pprof_listen", Flag: "pprof-listen", Help: "serve Go's pprof profiles (/debug/pprof/) on this loopback address (e.g. 127.0.0.1:6060; empty: off)", Field: func(c *Config) any { return &c.Debug.PprofListen }},
	{Key: "debug.pprof_allow_remote", Flag: "pprof-allow-remote", Help: "let --pprof-listen bind a non-loopback address (profiles reveal memory contents: trusted networks only)", Field: func(c *Config) any { return &c.Debug.PprofAllowRemote }},
	{Key: "dns.listen", Flag: "dns-listen", Help: "DNS listen addresses (overlay:PORT = the overlay address)", Field: func(c *Config) any { return &c.DNS.Listen }},
	{Key: "dns.domain", Flag: "dns-domain", Help: "DNS zone answered", Field: func(c *Config) any { return &c.DNS.Domain }},
	{Key: "dns.ttl", Flag: "dns-ttl", Help: "TTL of DNS answers", Field: func(c *Config) any { return &c.DNS.TTL }},
	{Key: "dns.upstream", Flag: "dns-upstream", Help: "forward other names to this resolver (default: REFUSED)", Field: func(c *Config) any { return &c.DNS.Upstream }},
	{Key: "dns.disabled", Flag: "no-dns", Help: "do not serve DNS", Field: func(c *Config) any { return &c.DNS.Disabled }},
	{Key: "dns.consul_alias", Flag: "dns-consul-alias", Help: "also answer the DNS names under consul. (for tools that hard-code .consul)", Field: func(c *Config) any { return &c.DNS.ConsulAlias }},
	{Key: "dns.resolved_disabled", Flag: "no-resolved", Help: "do not configure systemd-resolved to send ~DOMAIN to the agent", Field: func(c *Config) any { return &c.DNS.ResolvedDisabled }},
	{Key: "consul_api.listen", Flag: "consul-listen", Help: "serve the Consul-compatible HTTP API here (e.g. 127.0.0.1:8500, overlay:8500)", Field: func(c *Config) any { return &c.ConsulAPI.Listen }},
	{Key: "consul_api.token_file", Flag: "consul-token-file", Help: "token that Consul API writes from other hosts must carry (mode 0600)", Field: func(c *Config) any { return &c.ConsulAPI.TokenFile }},
	{Key: "consul_api.datacenter", Flag: "consul-datacenter", Help: "datacenter name the Consul API answers", Field: func(c *Config) any { return &c.ConsulAPI.Datacenter }},
	{Key: "groups", Flag: "group", Help: "a group of this host for network policy (repeatable; without a CA only as trustworthy as the gossip key)", Field: func(c *Config) any { return &c.Groups }, Append: true},
	{Key: "policy_file", Flag: "policy-file", Help: "local network policy document (wins over signed policies from gossip)", Field: func(c *Config) any { return &c.PolicyFile }},
	{Key: "policy_ca_file", Flag: "policy-ca-file", Help: "CA certificates (ca.crt) that must sign a policy spread by gossip", Field: func(c *Config) any { return &c.PolicyCAFile }},
	{Key: "policy_max_flows", Flag: "policy-max-flows", Help: "flows the policy's flow table holds (allocated at start)", Field: func(c *Config) any { return &c.PolicyMaxFlows }},
	{Key: "policy_max_flows_per_peer", Flag: "policy-max-flows-per-peer", Help: "flows one peer may have opened into this host; past it its new flows are refused (policy_flow_quota); 0: no quota", Field: func(c *Config) any { return &c.PolicyMaxFlowsPerPeer }},
	{Key: "cni.enabled", Flag: "cni", Help: "serve containers: forward between the weft-cni bridge and the overlay, write cni.subnet_env", Field: func(c *Config) any { return &c.CNI.Enabled }},
	{Key: "cni.subnet_env", Flag: "cni-subnet-env", Help: "where to write Flannel's subnet.env (with cni.enabled)", Field: func(c *Config) any { return &c.CNI.SubnetEnv }},
	{Key: "cni.bridge", Flag: "cni-bridge", Help: "the containers' bridge (the conflist's \"bridge\")", Field: func(c *Config) any { return &c.CNI.Bridge }},
	{Key: "cni.ipmasq", Flag: "cni-ipmasq", Help: "masquerade containers' traffic leaving the cluster CIDR (nftables)", Field: func(c *Config) any { return &c.CNI.IPMasq }},
	{Key: "netstack", Flag: "netstack", Help: "userspace network stack instead of a TUN: no root; reach the overlay through the proxies and forwards", Field: func(c *Config) any { return &c.Netstack }},
	{Key: "netstack_proxy.socks5", Flag: "socks5", Help: "netstack: SOCKS5 proxy listen address (empty: off)", Field: func(c *Config) any { return &c.NetstackProxy.SOCKS5 }},
	{Key: "netstack_proxy.http", Flag: "http-proxy", Help: "netstack: HTTP CONNECT proxy listen address (empty: off)", Field: func(c *Config) any { return &c.NetstackProxy.HTTP }},
	{Key: "netstack_proxy.username", Flag: "proxy-username", Help: "netstack: proxies require this username (with --proxy-password-file)", Field: func(c *Config) any { return &c.NetstackProxy.Username }},
	{Key: "netstack_proxy.password_file", Flag: "proxy-password-file", Help: "netstack: file holding the proxies' password (mode 0600)", Field: func(c *Config) any { return &c.NetstackProxy.PasswordFile }},
	{Key: "netstack_proxy.max_conns", Flag: "proxy-max-conns", Help: "netstack: concurrent connections per proxy or forward (0: 1024)", Field: func(c *Config) any { return &c.NetstackProxy.MaxConns }},
	{Key: "log_level", Flag: "log-level", Help: "debug, info, warn or error (SIGHUP reloads it)", Field: func(c *Config) any { return &c.LogLevel }},
	{Key: "log_format", Flag: "log-format", Help: "text or json", Field: func(c *Config) any { return &c.LogFormat }},
	{Key: "gossip.allowed_static", Flag: "gossip-allowed-static", Help: "prefixes within which members may announce static subnets outside the cluster CIDR (repeatable)", Field: func(c *Config) any { return &c.Gossip.AllowedStatic }, Append: true},
	{Key: "pki.ca", Flag: "pki-ca", Help: "trusted CA certificate file (weft ca init): members then need a valid certificate", Field: func(c *Config) any { return &c.PKI.CA }},
	{Key: "pki.cert", Flag: "pki-cert", Help: "this host's certificate file (weft ca sign)", Field: func(c *Config) any { return &c.PKI.Cert }},
	{Key: "pki.blocklist", Flag: "pki-blocklist", Help: "file of revoked certificate fingerprints, one per line", Field: func(c *Config) any { return &c.PKI.Blocklist }},
}

// SettingByFlag returns the setting whose flag is name; it panics on an unknown name (a
// programming error that the tests catch).
func SettingByFlag(name string) Setting {
	for _, s := range Settings {
		if s.Flag == name {
			return s
		}
	}
	panic("agent: no setting with flag " + name)
}

// DefaultConfig is the embedded configuration a bare `weft agent` runs with.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:        host,
		Mode:        "l3",
		Encryption:  "wireguard",
		Interface:   "weft0",
		ListenPort:  0, // resolved by Validate: 51820 encrypted (WireGuard's), 4789 plain (IANA VXLAN)
		MTU:         0, // resolved by Validate, see DefaultMTU
		VNI:         1,
		StateDir:    defaultStateDir(),                             // /var/lib/weft as root, the XDG state dir otherwise
		ClusterCIDR: Prefix{netip.MustParsePrefix("10.42.0.0/16")}, // 256 hosts of /24, private range
		TapOffload:  true,                                          // 64 frames per syscall where the kernel allows; it falls back by itself
		Gossip: GossipConfig{
			Bind:          "0.0.0.0:7946",             // Serf's customary LAN port
			RetryInterval: Duration{30 * time.Second}, // Consul's default
		},
		ControlSocket: defaultControlSocket(), // /run/weft/weft.sock as root, $XDG_RUNTIME_DIR otherwise
		DNS: DNSConfig{
			Listen: defaultDNSListen(),
			Domain: "weft.",
			TTL:    Duration{5 * time.Second}, // short: instances come and go with health
		},
		ConsulAPI: ConsulAPIConfig{Datacenter: "dc1"}, // the name Consul's tools assume
		CNI: CNIConfig{
			SubnetEnv: "/run/weft/subnet.env", // Flannel's path moved under weft's run directory
			Bridge:    "weft-br0",
		},
		LogLevel:  "info",
		LogFormat: "text", // logfmt: what journald and a terminal show well
		// policy.DefaultConfig's: 32768 flows (about 5 MB), a quarter of them per peer.
		PolicyMaxFlows:        policy.DefaultConfig().MaxFlows,
		PolicyMaxFlowsPerPeer: policy.DefaultConfig().MaxFlowsPerPeer,
		NetstackProxy: NetstackProxyConfig{
			SOCKS5: "127.0.0.1:1080", // SOCKS's IANA port
			HTTP:   "127.0.0.1:3128", // the customary HTTP proxy port (Squid's)
		},
	}
}

// Underlay and encapsulation overheads that decide the default MTU.
const (
	underlayMTU    = 1500
	ipv6Header     = 40 // the larger of the two underlay families, so one MTU fits both
	ipv4Header     = 20
	udpHeader      = 8
	transportOver  = 32 // type, receiver, counter (16) + AEAD tag (16)
	vxlanHeader    = 8
	EthernetHeader = 14
)

// DefaultMTU is the largest device MTU whose packets, once encapsulated, fit a 1500-byte
// underlay: 1412 in L3 and 1398 in encrypted L2 (1500 − 40 IPv6 − 8 UDP − 32 transport − 8
// VXLAN, less the inner Ethernet header in L2; the IPv6 header, the larger, so one MTU fits
// both underlay families). Plain L2 VXLAN takes 1450, the MTU the Linux kernel's vxlan device
// picks over IPv4 (1500 − 20 − 8 − 8 − 14), so that both ends of an interop segment agree.
func DefaultMTU(mode, encryption string) int {
	switch {
	case mode == "l2" && encryption == "none":
		return underlayMTU - ipv4Header - udpHeader - vxlanHeader - EthernetHeader
	case mode == "l2":
		return underlayMTU - ipv6Header - udpHeader - transportOver - vxlanHeader - EthernetHeader
	default:
		return underlayMTU - ipv6Header - udpHeader - transportOver - vxlanHeader
	}
}

// LoadConfig reads a YAML file over DefaultConfig. Unknown keys and bad values are errors
// that name the file and line.
func LoadConfig(path string) (Config, error) {
	cfg := DefaultConfig()
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("read config: %w", err)
	}
	if err := parseConfig(data, &cfg); err != nil {
		return cfg, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

func parseConfig(data []byte, cfg *Config) error {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return errors.New(yamlMessage(err)) // a syntax error
	}
	if len(root.Content) == 0 {
		return nil // an empty file (or one of comments only) is the defaults
	}
	if err := checkTree(&root, reflect.TypeFor[Config]()); err != nil {
		return err // configcheck.go: unknown keys and wrong shapes, by line and key
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return errors.New(yamlMessage(err))
	}
	cfg.serviceLines = recordLines(&root, "services")
	return nil
}

// Validate fills the derived defaults and checks every setting; the error says what to fix.
func (c *Config) Validate() error {
	for _, g := range c.Groups {
		if !identity.ValidGroup(g) {
			return fmt.Errorf("groups: %q: a group is 1 to 32 printable characters without spaces or commas", g)
		}
	}
	if err := c.CNI.validate(c.Mode); err != nil {
		return err
	}
	switch c.Mode {
	case "l3", "l2":
	default:
		return fmt.Errorf("mode %q: must be l3 or l2", c.Mode)
	}
	switch c.Encryption {
	case "wireguard":
	case "none":
		if c.Mode != "l2" {
			return errors.New("encryption: none is only for mode: l2 (plain VXLAN for trusted networks); use encryption: wireguard in l3")
		}
	default:
		return fmt.Errorf("encryption %q: must be wireguard or none", c.Encryption)
	}
	if c.PolicyMaxFlows < 1 || c.PolicyMaxFlows > 1<<24 {
		return fmt.Errorf("policy_max_flows %d: must be 1 to %d", c.PolicyMaxFlows, 1<<24)
	}
	if c.PolicyMaxFlowsPerPeer < 0 || c.PolicyMaxFlowsPerPeer > c.PolicyMaxFlows {
		return fmt.Errorf("policy_max_flows_per_peer %d: must be 0 (no quota) to policy_max_flows (%d)", c.PolicyMaxFlowsPerPeer, c.PolicyMaxFlows)
	}
	if !c.TapOffload && c.Mode != "l2" {
		return errors.New("tap_offload: false is only for mode: l2 (it opens the TAP without offloads; the TUN of l3 has no such switch)")
	}
	if c.ListenPort == 0 {
		c.ListenPort = 51820
		if c.Encryption == "none" {
			c.ListenPort = 4789
		}
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		return fmt.Errorf("listen_port %d: must be 1-65535", c.ListenPort)
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU(c.Mode, c.Encryption)
	}
	if c.MTU < 576 || c.MTU > 65535-80 {
		return fmt.Errorf("mtu %d: must be between 576 and 65455", c.MTU)
	}
	if c.VNI == 0 || c.VNI > 1<<24-1 {
		return fmt.Errorf("vni %d: must be 1-16777215", c.VNI)
	}
	if len(c.Interface) == 0 || len(c.Interface) > 15 {
		return fmt.Errorf("interface %q: must be 1-15 characters", c.Interface)
	}
	if c.Name == "" {
		return errors.New("name is empty and the hostname is unknown: set name")
	}
	if !c.ClusterCIDR.IsValid() {
		return errors.New("cluster_cidr is empty: set one, e.g. 10.42.0.0/16")
	}
	if c.ClusterCIDR.Bits() > 24 {
		return fmt.Errorf("cluster_cidr %s: must be /24 or larger (it is cut into /24s)", c.ClusterCIDR)
	}
	if c.Subnet.IsValid() && c.Subnet.Bits() != 24 && c.Subnet.Addr().Is4() {
		return fmt.Errorf("subnet %s: must be a /24", c.Subnet)
	}
	if c.Gossip.Disabled && !c.Subnet.IsValid() && !c.Address.IsValid() {
		return errors.New("gossip is disabled, so no subnet can be allocated: set subnet or address")
	}
	for i, p := range c.Peers {
		if p.Framing == "wireguard" && c.Encryption == "none" {
			return fmt.Errorf("peers[%d]%s: framing: wireguard needs encryption: wireguard", i, p.At())
		}
		if c.Encryption == "none" {
			if !p.Endpoint.IsValid() {
				return fmt.Errorf("peers[%d]%s: endpoint is empty: plain VXLAN peers are their VTEP addresses", i, p.At())
			}
			continue
		}
		if p.PublicKey == "" {
			return fmt.Errorf("peers[%d]%s: public_key is empty", i, p.At())
		}
		if err := validFraming(p.Framing, c.Mode); err != nil {
			return fmt.Errorf("peers[%d]%s: %w", i, p.At(), err)
		}
		if len(p.AllowedIPs) == 0 && c.Mode == "l3" {
			return fmt.Errorf("peers[%d]%s: allowed_ips is empty: list the overlay prefixes behind this peer", i, p.At())
		}
		if len(p.AllowedIPs) == 0 {
			return fmt.Errorf("peers[%d]%s: allowed_ips is empty: in encrypted l2 a peer may send only from the addresses in its allowed_ips; list its overlay address (e.g. 10.42.0.2/32)", i, p.At())
		}
	}
	for i, s := range c.Gossip.AllowedStatic {
		if _, err := netip.ParsePrefix(s); err != nil {
			return fmt.Errorf("gossip.allowed_static[%d] %q: not a CIDR prefix (like 10.99.0.0/16)", i, s)
		}
	}
	if (c.PKI.Cert != "" || c.PKI.Blocklist != "") && c.PKI.CA == "" {
		return errors.New("pki.cert / pki.blocklist need pki.ca: set it to the CA certificate (weft ca init writes ca.crt)")
	}
	if c.PKI.CA != "" && c.PKI.Cert == "" {
		return errors.New("pki.ca is set but pki.cert is not: sign this host's certificate with `weft ca sign --name NAME --public-key KEY` and set pki.cert")
	}
	if c.Gossip.RetryInterval.Duration <= 0 {
		return fmt.Errorf("gossip.retry_interval %s: must be positive (like 30s)", c.Gossip.RetryInterval)
	}
	if c.Gossip.RetryMax < 0 {
		return fmt.Errorf("gossip.retry_max %d: must be 0 (forever) or more", c.Gossip.RetryMax)
	}
	for i, s := range c.Services {
		if err := s.Normalized().Validate(); err != nil { // the catalog's defaults, as Register applies them
			return fmt.Errorf("services[%d]%s: %w", i, lineOf(c.serviceLines, i), err)
		}
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		return fmt.Errorf("log_level %q: must be debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("log_format %q: must be text or json", c.LogFormat)
	}
	for _, l := range c.DNS.Listen {
		if port, ok := strings.CutPrefix(l, "overlay:"); ok {
			if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
				return fmt.Errorf("dns.listen %q: the port after overlay: must be 1-65535", l)
			}
			continue
		}
		if _, err := netip.ParseAddrPort(l); err != nil {
			return fmt.Errorf("dns.listen %q: must be IP:PORT (like 127.0.0.1:53) or overlay:PORT", l)
		}
	}
	for _, l := range c.ConsulAPI.Listen {
		if port, ok := strings.CutPrefix(l, "overlay:"); ok {
			if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
				return fmt.Errorf("consul_api.listen %q: the port after overlay: must be 1-65535", l)
			}
			continue
		}
		if _, err := netip.ParseAddrPort(l); err != nil {
			return fmt.Errorf("consul_api.listen %q: must be IP:PORT (like 127.0.0.1:8500) or overlay:PORT", l)
		}
	}
	if c.ConsulAPI.Datacenter == "" {
		c.ConsulAPI.Datacenter = "dc1"
	}
	if err := c.validateNetstack(); err != nil {
		return err
	}
	if c.DNS.Domain == "" {
		c.DNS.Domain = "weft."
	}
	if !strings.HasSuffix(c.DNS.Domain, ".") {
		c.DNS.Domain += "."
	}
	return nil
}

// At says where the entry was read, " (line N)", for messages; empty when not from a file.
func (p PeerConfig) At() string {
	if p.line > 0 {
		return fmt.Sprintf(" (line %d)", p.line)
	}
	return ""
}

// UnmarshalYAML records the line of a peer entry for later messages.
func (p *PeerConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain PeerConfig
	var v plain
	if err := n.Decode(&v); err != nil {
		return err
	}
	*p = PeerConfig(v)
	p.line = n.Line
	return nil
}

// Prefix is a netip.Prefix read from YAML with a line-numbered error.
type Prefix struct{ netip.Prefix }

// UnmarshalYAML parses "10.42.0.0/16".
func (p *Prefix) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" {
		p.Prefix = netip.Prefix{}
		return nil
	}
	v, err := netip.ParsePrefix(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a CIDR prefix (like 10.42.0.0/16)", n.Line, n.Value)
	}
	p.Prefix = v.Masked()
	return nil
}

// MarshalYAML writes the prefix as text.
func (p Prefix) MarshalYAML() (any, error) {
	if !p.IsValid() {
		return "", nil
	}
	return p.String(), nil
}

// Addr is a netip.Addr read from YAML with a line-numbered error.
type Addr struct{ netip.Addr }

// UnmarshalYAML parses "10.42.1.1".
func (a *Addr) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" {
		a.Addr = netip.Addr{}
		return nil
	}
	v, err := netip.ParseAddr(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not an IP address", n.Line, n.Value)
	}
	a.Addr = v
	return nil
}

// MarshalYAML writes the address as text.
func (a Addr) MarshalYAML() (any, error) {
	if !a.IsValid() {
		return "", nil
	}
	return a.String(), nil
}

// AddrPort is a netip.AddrPort read from YAML with a line-numbered error.
type AddrPort struct{ netip.AddrPort }

// UnmarshalYAML parses "192.0.2.1:51820" or "[2001:db8::1]:51820".
func (a *AddrPort) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" {
		a.AddrPort = netip.AddrPort{}
		return nil
	}
	v, err := netip.ParseAddrPort(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not an IP:port endpoint (like 192.0.2.1:51820)", n.Line, n.Value)
	}
	a.AddrPort = v
	return nil
}

// MarshalYAML writes the endpoint as text.
func (a AddrPort) MarshalYAML() (any, error) {
	if !a.IsValid() {
		return "", nil
	}
	return a.String(), nil
}

// Duration is a time.Duration read from YAML as "5s", with a line-numbered error.
type Duration struct{ time.Duration }

// UnmarshalYAML parses a Go duration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Value == "" {
		d.Duration = 0
		return nil
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (like 5s or 2m)", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// WithoutLines copies peers without the file lines they were read at (moving an entry in the
// file is no change).
func WithoutLines(ps []PeerConfig) []PeerConfig {
	out := make([]PeerConfig, len(ps))
	for i, p := range ps {
		p.line = 0
		out[i] = p
	}
	return out
}
