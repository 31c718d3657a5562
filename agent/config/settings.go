package config

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
	// *Addr, *Duration, *[]ForwardConfig or *[]ExposeConfig.
	Field func(c *Config) any
	// Append: the flag's values are added to those of the file instead of replacing them.
	Append bool
	// Global: the flag is the CLI's global one (--socket, also WEFT_SOCKET), not the agent
	// command's own.
	Global bool
}

// Settings are the scalar settings of Config, in the order `weft agent --help` lists them,
// and the netstack relays (forward, expose), whose flags take one record each. The other lists
// of records (peers, services) are YAML only (services also: weft register).
var Settings = []Setting{
	{Key: "name", Flag: "name", Help: "node name in gossip", Field: func(c *Config) any { return &c.Name }},
	{Key: "mode", Flag: "mode", Help: "l3 (TUN, IP) or l2 (TAP, Ethernet)", Field: func(c *Config) any { return &c.Mode }},
	{Key: "encryption", Flag: "encryption", Help: "wireguard, or none (l2 only: plain RFC 7348 VXLAN for trusted networks)", Field: func(c *Config) any { return &c.Encryption }},
	{Key: "interface", Flag: "interface", Help: "TUN/TAP device name", Field: func(c *Config) any { return &c.Interface }},
	{Key: "listen_port", Flag: "listen-port", Help: "UDP data port (default 51820, or 4789 with --encryption none)", Field: func(c *Config) any { return &c.ListenPort }},
	{Key: "mtu", Flag: "mtu", Help: "device MTU (default: follows the underlay: the MTU of the link toward the peers less weft's overhead, 1432 in l3 over a 1500-byte IPv4 link; a larger value is refused)", Field: func(c *Config) any { return &c.MTU }},
	{Key: "path_mtu_probe_interval", Flag: "path-mtu-probe-interval", Help: "search each peer's path MTU again with probes this often, so a widened path is used (0: no probes; ICMP errors still apply)", Field: func(c *Config) any { return &c.PathMTUProbeInterval }},
	{Key: "crypto_workers", Flag: "crypto-workers", Help: "goroutines that share each batch's encryption and decryption, 0 to 64 (0: all cores from 4 cores up, none below; 1: never share)", Field: func(c *Config) any { return &c.CryptoWorkers }},
	{Key: "vni", Flag: "vni", Help: "VXLAN network identifier of the overlay", Field: func(c *Config) any { return &c.VNI }},
	{Key: "clients.range", Flag: "clients-range", Help: "addresses for stock WireGuard clients: FIRST-LAST or a prefix inside the host's /24 (default .200-.254)", Field: func(c *Config) any { return &c.Clients.Range }},
	{Key: "state_dir", Flag: "state-dir", Help: "state directory: private key, chosen subnet, services", Field: func(c *Config) any { return &c.StateDir }},
	{Key: "private_key_file", Flag: "private-key-file", Help: "private key file (default STATE_DIR/private.key, generated when missing)", Field: func(c *Config) any { return &c.PrivateKeyFile }},
	{Key: "cluster_cidr", Flag: "cluster-cidr", Help: "overlay range (IPv4) cut into per-host subnets of subnet_len bits", Field: func(c *Config) any { return &c.ClusterCIDR }},
	{Key: "subnet_len", Flag: "subnet-len", Help: "prefix length of each host's subnet, 20 to 26 (the same on every host)", Field: func(c *Config) any { return &c.SubnetLen }},
	{Key: "subnet_min", Flag: "subnet-min", Help: "first subnet the allocator may hand out (default: the cluster CIDR's second)", Field: func(c *Config) any { return &c.SubnetMin }},
	{Key: "subnet_max", Flag: "subnet-max", Help: "last subnet the allocator may hand out (default: the cluster CIDR's last)", Field: func(c *Config) any { return &c.SubnetMax }},
	{Key: "subnet", Flag: "subnet", Help: "static subnet for this host, a /subnet_len (wins over allocation)", Field: func(c *Config) any { return &c.Subnet }},
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
	{Key: "consul_api.token_file", Flag: "consul-token-file", Help: "token every Consul API write must carry, from this host too (mode 0600; without it any local user may write over loopback)", Field: func(c *Config) any { return &c.ConsulAPI.TokenFile }},
	{Key: "consul_api.datacenter", Flag: "consul-datacenter", Help: "datacenter name the Consul API answers", Field: func(c *Config) any { return &c.ConsulAPI.Datacenter }},
	{Key: "catalog.max_services", Flag: "catalog-max-services", Help: "most services one host may register, and keep of another host's catalog (the same on every host)", Field: func(c *Config) any { return &c.Catalog.MaxServices }},
	{Key: "catalog.max_bytes", Flag: "catalog-max-bytes", Help: "most bytes of one host's encoded catalog, registered here or kept of another host (the same on every host)", Field: func(c *Config) any { return &c.Catalog.MaxBytes }},
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
	{Key: "forward", Flag: "forward", Help: "netstack: relay a local port to an overlay destination, LISTEN=TO[/udp], e.g. 127.0.0.1:5432=db.service.weft:5432 (repeatable; adds to the file's forward list)", Field: func(c *Config) any { return &c.Forward }, Append: true},
	{Key: "expose", Flag: "expose", Help: "netstack: relay a port of this host's overlay address to a local address, PORT=TO[/udp], e.g. 8080=127.0.0.1:8080 (repeatable; adds to the file's expose list)", Field: func(c *Config) any { return &c.Expose }, Append: true},
	{Key: "log_level", Flag: "log-level", Help: "debug, info, warn or error (SIGHUP reloads it)", Field: func(c *Config) any { return &c.LogLevel }},
	{Key: "log_format", Flag: "log-format", Help: "text or json", Field: func(c *Config) any { return &c.LogFormat }},
	{Key: "gossip.allowed_static", Flag: "gossip-allowed-static", Help: "prefixes within which members may announce static subnets outside the cluster CIDR, and within which a static /24 displaces the host that holds it (repeatable)", Field: func(c *Config) any { return &c.Gossip.AllowedStatic }, Append: true},
	{Key: "pki.ca", Flag: "pki-ca", Help: "trusted CA certificate file (weft ca init): members then need a valid certificate", Field: func(c *Config) any { return &c.PKI.CA }},
	{Key: "pki.cert", Flag: "pki-cert", Help: "this host's certificate file (weft ca sign)", Field: func(c *Config) any { return &c.PKI.Cert }},
	{Key: "trust", Flag: "trust", Help: "ca (default: members need a certificate; a host with none and nothing to join creates a new cluster, one that joins needs --join-token) or shared-key (labs: every gossip-key holder is trusted to claim addresses)", Field: func(c *Config) any { return &c.Trust }},
	{Key: "pki.ca_key", Flag: "pki-ca-key", Help: "the CA's private key (weft init writes STATE_DIR/ca.key, used when present): this host is then a CA host that enrolls and renews other hosts", Field: func(c *Config) any { return &c.PKI.CAKey }},
	{Key: "join_token", Flag: "join-token", Help: "enroll with the CA host (the host of the first --retry-join/--join address) using this token (weft token create), then run with the certificate it issues", Field: func(c *Config) any { return &c.JoinToken }},
	{Key: "enroll.listen", Flag: "enroll-listen", Help: "a CA host serves enrollment and renewal here (TCP; empty: off)", Field: func(c *Config) any { return &c.Enroll.Listen }},
	{Key: "enroll.cert_validity", Flag: "enroll-cert-validity", Help: "validity of the certificates a CA host issues (hosts renew after two thirds of it)", Field: func(c *Config) any { return &c.Enroll.CertValidity }},
	{Key: "pki.blocklist", Flag: "pki-blocklist", Help: "file of revoked certificate fingerprints, one per line", Field: func(c *Config) any { return &c.PKI.Blocklist }},
	{Key: "ui.listen", Flag: "ui-listen", Help: "serve the read-only web console here (empty: off; an address other than loopback needs --ui-token-file)", Field: func(c *Config) any { return &c.UI.Listen }},
	{Key: "ui.token_file", Flag: "ui-token-file", Help: "token every web console request must carry (mode 0600, at least 16 bytes; open /login?token=TOKEN once in the browser)", Field: func(c *Config) any { return &c.UI.TokenFile }},
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

// settingByKey returns the setting of the YAML key key.
func settingByKey(key string) (Setting, bool) {
	for _, s := range Settings {
		if s.Key == key {
			return s, true
		}
	}
	return Setting{}, false
}
