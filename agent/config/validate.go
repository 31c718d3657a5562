package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/weftnet/weft/identity"
)

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
