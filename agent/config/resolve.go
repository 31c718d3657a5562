package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/weftnet/weft/discovery/catalog"
	"github.com/weftnet/weft/identity"
)

// Resolve is the second step of the configuration (the first is decoding: LoadConfig, then
// the flags): from raw as decoded it builds the configuration the agent runs with, with the
// defaults that depend on other settings filled in (listen_port, mtu: from the underlay given
// by SetUnderlay, consul_api.datacenter,
// dns.domain, the proto of forward and expose entries), and checks every setting. It
// reports every problem at once, joined: each an *Error naming its key and, when raw was
// read from a file, the line (Problems lists them). raw is not changed. On error the
// returned value is resolved as far as it could be, and is not to be run.
func Resolve(raw Config) (Config, error) {
	c := raw
	// Lists whose entries get defaults are copied: raw keeps what was written.
	c.Forward, c.Expose = slices.Clone(raw.Forward), slices.Clone(raw.Expose)
	p := &problems{raw: &raw}
	c.resolve(p)
	return c, p.err()
}

// Validate resolves c in place (Resolve) and returns every problem it has, joined; the
// error says what to fix. It is what agent.New and `weft agent` call.
func (c *Config) Validate() error {
	r, err := Resolve(*c)
	*c = r
	return err
}

// resolve fills the derived defaults of c and adds its problems to p, in the order the
// settings are listed in a file.
func (c *Config) resolve(p *problems) {
	for i, g := range c.Groups {
		if !identity.ValidGroup(g) {
			p.addf(fmt.Sprintf("groups[%d]", i), "groups: %q: a group is 1 to 32 printable characters without spaces or commas", g)
		}
	}
	c.CNI.check(c.Mode, p)
	modeOK := true
	switch c.Mode {
	case "l3", "l2":
	default:
		modeOK = false
		p.addf("mode", "mode %q: must be l3 or l2", c.Mode)
	}
	switch c.Encryption {
	case "wireguard":
	case "none":
		if c.Mode != "l2" && modeOK {
			p.add("encryption", errors.New("encryption: none is only for mode: l2 (plain VXLAN for trusted networks); use encryption: wireguard in l3"))
		}
	default:
		p.addf("encryption", "encryption %q: must be wireguard or none", c.Encryption)
	}
	if c.PolicyMaxFlows < 1 || c.PolicyMaxFlows > 1<<24 {
		p.addf("policy_max_flows", "policy_max_flows %d: must be 1 to %d", c.PolicyMaxFlows, 1<<24)
	} else if c.PolicyMaxFlowsPerPeer < 0 || c.PolicyMaxFlowsPerPeer > c.PolicyMaxFlows {
		p.addf("policy_max_flows_per_peer", "policy_max_flows_per_peer %d: must be 0 (no quota) to policy_max_flows (%d)", c.PolicyMaxFlowsPerPeer, c.PolicyMaxFlows)
	}
	if !c.TapOffload && c.Mode != "l2" && modeOK {
		p.add("tap_offload", errors.New("tap_offload: false is only for mode: l2 (it opens the TAP without offloads; the TUN of l3 has no such switch)"))
	}
	if c.ListenPort == 0 {
		c.ListenPort = 51820
		if c.Encryption == "none" {
			c.ListenPort = 4789
		}
	}
	if c.ListenPort < 0 || c.ListenPort > 65535 {
		p.addf("listen_port", "listen_port %d: must be 1-65535", c.ListenPort)
	}
	c.resolveMTU(p) // mtu.go
	if c.VNI == 0 || c.VNI > 1<<24-1 {
		p.addf("vni", "vni %d: must be 1-16777215", c.VNI)
	}
	if len(c.Interface) == 0 || len(c.Interface) > 15 {
		p.addf("interface", "interface %q: must be 1-15 characters", c.Interface)
	}
	if c.Name == "" {
		p.add("name", errors.New("name is empty and the hostname is unknown: set name"))
	}
	c.checkSubnets(p)
	if c.Gossip.Disabled && !c.Subnet.IsValid() && !c.Address.IsValid() {
		p.add("gossip.disabled", errors.New("gossip is disabled, so no subnet can be allocated: set subnet or address"))
	}
	for i, pc := range c.Peers {
		c.checkPeer(i, pc, p)
	}
	for i, s := range c.Gossip.AllowedStatic {
		if _, err := netip.ParsePrefix(s); err != nil {
			p.addf(fmt.Sprintf("gossip.allowed_static[%d]", i), "gossip.allowed_static[%d] %q: not a CIDR prefix (like 10.99.0.0/16)", i, s)
		}
	}
	switch {
	case (c.PKI.Cert != "" || c.PKI.Blocklist != "") && c.PKI.CA == "":
		key := "pki.cert"
		if c.PKI.Cert == "" {
			key = "pki.blocklist"
		}
		p.add(key, errors.New("pki.cert / pki.blocklist need pki.ca: set it to the CA certificate (weft ca init writes ca.crt)"))
	case c.PKI.CAKey != "" && c.PKI.CA == "":
		p.add("pki.ca_key", errors.New("pki.ca_key needs pki.ca: set it to the CA's certificate (weft init writes STATE_DIR/ca.crt beside ca.key)"))
	case c.PKI.CA != "" && c.PKI.Cert == "" && c.PKI.CAKey == "":
		p.add("pki.ca", errors.New("pki.ca is set but pki.cert is not: sign this host's certificate with `weft ca sign --name NAME --public-key KEY` and set pki.cert"))
	}
	switch c.Trust {
	case TrustCA, TrustSharedKey:
	default:
		p.addf("trust", "trust %q: must be ca or shared-key", c.Trust)
	}
	if c.JoinToken != "" {
		if _, err := identity.ParseToken(c.JoinToken); err != nil {
			p.add("join_token", fmt.Errorf("join_token: %w", err))
		} else if len(c.Gossip.Join) == 0 && len(c.Gossip.RetryJoin) == 0 {
			p.add("join_token", errors.New("join_token needs the CA host's address: add --retry-join ADDR (the host where `weft init` ran)"))
		}
		if c.Gossip.Disabled {
			p.add("join_token", errors.New("join_token needs gossip: drop gossip.disabled"))
		}
	}
	if c.Enroll.CertValidity.Duration < 10*time.Second {
		p.addf("enroll.cert_validity", "enroll.cert_validity %s: must be at least 10s (like 720h)", c.Enroll.CertValidity)
	}
	if c.Enroll.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Enroll.Listen); err != nil {
			p.addf("enroll.listen", "enroll.listen %q: must be [IP]:PORT (like :7947)", c.Enroll.Listen)
		}
	}
	if d := c.PathMTUProbeInterval.Duration; d < 0 || (d > 0 && d < time.Second) {
		p.addf("path_mtu_probe_interval", "path_mtu_probe_interval %s: must be 0 (no probes) or at least 1s (like 10m)", c.PathMTUProbeInterval)
	}
	if c.CryptoWorkers < 0 || c.CryptoWorkers > 64 {
		p.addf("crypto_workers", "crypto_workers %d: must be 0 (automatic) to 64", c.CryptoWorkers)
	}
	if c.Gossip.RetryInterval.Duration <= 0 {
		p.addf("gossip.retry_interval", "gossip.retry_interval %s: must be positive (like 30s)", c.Gossip.RetryInterval)
	}
	if c.Gossip.RetryMax < 0 {
		p.addf("gossip.retry_max", "gossip.retry_max %d: must be 0 (forever) or more", c.Gossip.RetryMax)
	}
	for i, s := range c.Services {
		if err := s.Normalized().Validate(); err != nil { // the catalog's defaults, as Register applies them
			key := fmt.Sprintf("services[%d]", i)
			p.add(key, fmt.Errorf("services[%d]%s: %w", i, at(p.raw.lineOf(key)), err))
		}
	}
	if c.Catalog.MaxServices == 0 && c.Catalog.MaxBytes == 0 {
		c.Catalog = CatalogLimits{MaxServices: catalog.DefaultMaxServices, MaxBytes: catalog.DefaultMaxBytes} // a Config built in code
	}
	if n := c.Catalog.MaxServices; n < 1 || n > maxCatalogServices {
		p.addf("catalog.max_services", "catalog.max_services %d: must be 1 to %d", n, maxCatalogServices)
	}
	if n := c.Catalog.MaxBytes; n < minCatalogBytes || n > catalog.MaxCatalogLen {
		p.addf("catalog.max_bytes", "catalog.max_bytes %d: must be %d to %d", n, minCatalogBytes, catalog.MaxCatalogLen)
	}
	switch c.LogLevel {
	case "debug", "info", "warn", "error":
	default:
		p.addf("log_level", "log_level %q: must be debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		p.addf("log_format", "log_format %q: must be text or json", c.LogFormat)
	}
	checkListen(p, "dns.listen", c.DNS.Listen, "127.0.0.1:53")
	checkListen(p, "consul_api.listen", c.ConsulAPI.Listen, "127.0.0.1:8500")
	c.UI.check(p) // ui.go
	if c.ConsulAPI.Datacenter == "" {
		c.ConsulAPI.Datacenter = "dc1"
	}
	c.checkNetstack(p)
	if c.DNS.Domain == "" {
		c.DNS.Domain = "weft."
	}
	if !strings.HasSuffix(c.DNS.Domain, ".") {
		c.DNS.Domain += "."
	}
}

// checkPeer adds the problems of static peer i.
func (c *Config) checkPeer(i int, pc PeerConfig, p *problems) {
	key := fmt.Sprintf("peers[%d]", i)
	add := func(err error) { p.errs = append(p.errs, &Error{Key: key, Line: pc.line, Err: err}) }
	if pc.Framing == "wireguard" && c.Encryption == "none" {
		add(fmt.Errorf("peers[%d]%s: framing: wireguard needs encryption: wireguard", i, pc.At()))
		return
	}
	if c.Encryption == "none" {
		if !pc.Endpoint.IsValid() {
			add(fmt.Errorf("peers[%d]%s: endpoint is empty: plain VXLAN peers are their VTEP addresses", i, pc.At()))
		}
		return
	}
	if pc.PublicKey == "" {
		add(fmt.Errorf("peers[%d]%s: public_key is empty", i, pc.At()))
	}
	if err := validFraming(pc.Framing, c.Mode); err != nil {
		add(fmt.Errorf("peers[%d]%s: %w", i, pc.At(), err))
	}
	if len(pc.AllowedIPs) == 0 && c.Mode == "l3" {
		add(fmt.Errorf("peers[%d]%s: allowed_ips is empty: list the overlay prefixes behind this peer", i, pc.At()))
	} else if len(pc.AllowedIPs) == 0 {
		add(fmt.Errorf("peers[%d]%s: allowed_ips is empty: in encrypted l2 a peer may send only from the addresses in its allowed_ips; list its overlay address (e.g. 10.42.0.2/32)", i, pc.At()))
	}
}

// checkListen adds the problems of a list of listen addresses (dns.listen, consul_api.listen):
// each IP:PORT or overlay:PORT; like is an example address for the message.
func checkListen(p *problems, key string, list []string, like string) {
	for i, l := range list {
		k := fmt.Sprintf("%s[%d]", key, i)
		if port, ok := strings.CutPrefix(l, "overlay:"); ok {
			if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
				p.addf(k, "%s %q: the port after overlay: must be 1-65535", key, l)
			}
			continue
		}
		if _, err := netip.ParseAddrPort(l); err != nil {
			p.addf(k, "%s %q: must be IP:PORT (like %s) or overlay:PORT", key, l, like)
		}
	}
}

// Bounds of the catalog settings: a catalog beyond about 25 KB deflated (catalogdist's
// MaxChunks) cannot be carried whatever the setting, so the upper ones are generous.
const (
	maxCatalogServices = 100_000
	minCatalogBytes    = 1024
)

// checkSubnets checks cluster_cidr, subnet_len, subnet_min/subnet_max and a static subnet
// against each other.
func (c *Config) checkSubnets(p *problems) {
	if c.SubnetLen == 0 {
		c.SubnetLen = 24 // a Config built in code rather than from DefaultConfig
	}
	switch {
	case !c.ClusterCIDR.IsValid():
		p.add("cluster_cidr", errors.New("cluster_cidr is empty: set one, e.g. 10.42.0.0/16"))
		return
	case c.ClusterCIDR.Addr().Is6():
		p.addf("cluster_cidr", "cluster_cidr %s: an IPv6 cluster range is not supported yet: use an IPv4 range such as 10.42.0.0/16", c.ClusterCIDR)
		return
	}
	if c.SubnetLen < minSubnetLen || c.SubnetLen > maxSubnetLen {
		p.addf("subnet_len", "subnet_len %d: must be %d to %d (%d: a /%d per host)", c.SubnetLen, minSubnetLen, maxSubnetLen, 24, 24)
		return
	}
	if c.ClusterCIDR.Bits() >= c.SubnetLen || c.ClusterCIDR.Bits() < 8 {
		p.addf("cluster_cidr", "cluster_cidr %s: must be /8 to /%d (it is cut into /%d subnets, subnet_len)", c.ClusterCIDR, c.SubnetLen-1, c.SubnetLen)
		return
	}
	for _, b := range []struct {
		key string
		v   Prefix
	}{{"subnet_min", c.SubnetMin}, {"subnet_max", c.SubnetMax}} {
		if b.v.IsValid() && (b.v.Bits() != c.SubnetLen || b.v.Masked() != b.v.Prefix || !c.ClusterCIDR.Contains(b.v.Addr())) {
			p.addf(b.key, "%s %s: must be a /%d (subnet_len) inside cluster_cidr %s, such as %s", b.key, b.v, c.SubnetLen, c.ClusterCIDR,
				netip.PrefixFrom(c.ClusterCIDR.Masked().Addr(), c.SubnetLen))
		}
	}
	if c.SubnetMin.IsValid() && c.SubnetMax.IsValid() && c.SubnetMax.Addr().Less(c.SubnetMin.Addr()) {
		p.addf("subnet_min", "subnet_min %s is above subnet_max %s", c.SubnetMin, c.SubnetMax)
	}
	if c.Subnet.IsValid() && c.Subnet.Bits() != c.SubnetLen && c.Subnet.Addr().Is4() && c.ClusterCIDR.Contains(c.Subnet.Addr()) {
		p.addf("subnet", "subnet %s: must be a /%d (subnet_len) inside the cluster CIDR", c.Subnet, c.SubnetLen)
	}
}

// The bounds of subnet_len (the allocator's, discovery/membership).
const (
	minSubnetLen = 20
	maxSubnetLen = 26
)
