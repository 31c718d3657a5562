package config

import (
	"net/netip"
	"os"
	"time"

	"github.com/weftnet/weft/discovery/catalog"
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
	// MTU of the device; 0 follows the underlay: the MTU of the link toward the peers less
	// weft's overhead (mtu.go). A configured MTU larger than the underlay carries is refused.
	MTU int `yaml:"mtu"`
	// PathMTUProbeInterval is how often each peer's path MTU is searched again with probes,
	// so that a path that widened is used again; 0 turns probing off (ICMP errors and the
	// route's MTU still apply).
	PathMTUProbeInterval Duration `yaml:"path_mtu_probe_interval"`
	// CryptoWorkers is how many goroutines share the encryption and decryption of each
	// batch of packets: 0 (the default) uses every core on machines of 4 cores or more and
	// keeps each loop on its own core below; 1 never shares.
	CryptoWorkers int `yaml:"crypto_workers"`
	// VNI is the VXLAN network identifier of this overlay; packets of another VNI are dropped.
	VNI uint32 `yaml:"vni"`
	// StateDir keeps the private key (0600), the chosen subnet and local service registrations.
	StateDir string `yaml:"state_dir"`
	// PrivateKeyFile overrides StateDir/private.key.
	PrivateKeyFile string `yaml:"private_key_file"`
	// ClusterCIDR is cut into per-host subnets of SubnetLen bits.
	ClusterCIDR Prefix `yaml:"cluster_cidr"`
	// SubnetLen is the prefix length of each host's subnet (Flannel's SubnetLen): 20 to
	// 26, 24 by default. Every host of a cluster must use the same.
	SubnetLen int `yaml:"subnet_len"`
	// SubnetMin and SubnetMax bound the subnets the allocator hands out (Flannel's
	// SubnetMin/SubnetMax): the first and last, inclusive; zero: the whole cluster CIDR but
	// its first subnet.
	SubnetMin Prefix `yaml:"subnet_min"`
	SubnetMax Prefix `yaml:"subnet_max"`
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
	// Catalog bounds each host's service catalog, this host's and what it accepts of others.
	Catalog CatalogLimits `yaml:"catalog"`
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

	// Trust is "ca" (the default: members need a certificate of the cluster CA; an agent
	// with none bootstraps a new cluster or enrolls with a token) or "shared-key" (labs: no
	// CA required, every holder of the gossip key is trusted to claim addresses).
	Trust string `yaml:"trust"`
	// JoinToken enrolls this host with a CA host (discovery/enroll): the host of the first
	// gossip.join or gossip.retry_join address, on the enroll port. Ignored once enrolled (the
	// certificate is in StateDir).
	JoinToken string `yaml:"join_token"`
	// Enroll configures the enrollment service of a CA host.
	Enroll EnrollConfig `yaml:"enroll"`

	file *fileLines // where the file gave each key (lines.go); nil when not read from a file
	// underlay is the link the agent found for the data port (SetUnderlay, mtu.go);
	// mtuFollows: MTU was not configured and follows it.
	underlay   Underlay
	mtuFollows bool
	// PKI configures the cluster CA (trust.go): with pki.ca set, members need a certificate.
	PKI PKIConfig `yaml:"pki"`
	// UI is the web console (ui.go); on loopback by default.
	UI UIConfig `yaml:"ui"`
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
	// CAKey is the CA's private key: this host is then a CA host (agent/wire_enroll.go).
	// Default: StateDir/ca.key when it exists (`weft init`).
	CAKey string `yaml:"ca_key"`
}

// EnrollConfig configures a CA host's enrollment service (discovery/enroll).
type EnrollConfig struct {
	// Listen is the TCP address enrollment is served on (empty: off).
	Listen string `yaml:"listen"`
	// CertValidity is the validity of the host certificates this CA host issues.
	CertValidity Duration `yaml:"cert_validity"`
}

// Trust modes.
const (
	TrustCA        = "ca"
	TrustSharedKey = "shared-key"
)

// DefaultEnrollPort is the enrollment service's port: next to gossip's 7946.
const DefaultEnrollPort = 7947

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

// CatalogLimits bound a host's service catalog: what may be registered here, and what
// this host keeps of another's (a larger one is refused and counted,
// weft_catalog_dropped_total). The same on every host.
type CatalogLimits struct {
	// MaxServices is the most services of one host.
	MaxServices int `yaml:"max_services"`
	// MaxBytes is the most bytes of one host's encoded catalog (uncompressed).
	MaxBytes int `yaml:"max_bytes"`
}

// ConsulAPIConfig configures the Consul-compatible HTTP API (agent/consul.go).
type ConsulAPIConfig struct {
	// Listen addresses (TCP); "overlay:PORT" means the overlay address. Empty: off.
	Listen []string `yaml:"listen"`
	// TokenFile holds the token that every write must carry, over loopback too (mode
	// 0600); without it only loopback connections may write, from any local user.
	TokenFile string `yaml:"token_file"`
	// Datacenter is the datacenter name answered (Consul's tools assume "dc1").
	Datacenter string `yaml:"datacenter"`
}

// DefaultConfig is the embedded configuration a bare `weft agent` runs with.
func DefaultConfig() Config {
	host, _ := os.Hostname()
	return Config{
		Name:       host,
		Mode:       "l3",
		Encryption: "wireguard",
		Interface:  "weft0",
		ListenPort: 0, // resolved by Validate: 51820 encrypted (WireGuard's), 4789 plain (IANA VXLAN)
		MTU:        0, // resolved by Validate: follows the underlay (mtu.go), else DefaultMTU
		VNI:        1,
		// As long as the kernel keeps a learned PMTU (net.ipv4.route.mtu_expires).
		PathMTUProbeInterval: Duration{10 * time.Minute},
		StateDir:             defaultStateDir(),                             // /var/lib/weft as root, the XDG state dir otherwise
		ClusterCIDR:          Prefix{netip.MustParsePrefix("10.42.0.0/16")}, // 255 hosts of /24, private range
		SubnetLen:            24,
		TapOffload:           true, // 64 frames per syscall where the kernel allows; it falls back by itself
		Gossip: GossipConfig{
			Bind:          "0.0.0.0:7946",             // Serf's customary LAN port
			RetryInterval: Duration{30 * time.Second}, // Consul's default
		},
		Trust: TrustCA, // certificates by default (issue 23): a gossip key alone does not let a host speak for another
		Enroll: EnrollConfig{
			Listen:       ":7947",                       // DefaultEnrollPort, on every address: joiners come from anywhere
			CertValidity: Duration{30 * 24 * time.Hour}, // renewed after 20 days: a lost host drops out within a month
		},
		ControlSocket: defaultControlSocket(), // /run/weft/weft.sock as root, $XDG_RUNTIME_DIR otherwise
		DNS: DNSConfig{
			Listen: defaultDNSListen(),
			Domain: "weft.",
			TTL:    Duration{5 * time.Second}, // short: instances come and go with health
		},
		ConsulAPI: ConsulAPIConfig{Datacenter: "dc1"}, // the name Consul's tools assume
		Catalog:   CatalogLimits{MaxServices: catalog.DefaultMaxServices, MaxBytes: catalog.DefaultMaxBytes},
		CNI: CNIConfig{
			SubnetEnv: "/run/weft/subnet.env", // Flannel's path moved under weft's run directory
			Bridge:    "weft-br0",
		},
		UI:        UIConfig{Listen: DefaultUIListen},
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

// DefaultMTU is the MTU assumed when no underlay was found (mtu.go): the largest device MTU
// whose packets, once encapsulated, fit a 1500-byte underlay: 1412 in L3 and 1398 in encrypted L2 (1500 − 40 IPv6 − 8 UDP − 32 transport − 8
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
