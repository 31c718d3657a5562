package clients

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/agent/internal/hostnet"
)

// Priorities of the client guard: before the CNI guard's (32700) and the main table's.
const (
	guardForwardPriority = 32690 // from a client (the host's /24) to the overlay
	guardSubnetPriority  = 32691 // to the host's /24 (replies to clients)
	guardDropPriority    = 32692 // anything else that entered on the TUN
)

// guardRules: with forwarding on for the TUN, what enters on it and is not for a local
// address is routed only from a client to the cluster CIDR or to this host's subnet (a
// client), and dropped otherwise: no client or peer can use the host as a router to its
// underlay or beyond. A source in this host's /24 arriving on the TUN can only be a client:
// the tunnel's cryptokey routing accepts it from no one else.
func (c *Clients) guardRules(subnet, cluster netip.Prefix) []*netlink.Rule {
	ipnet := func(p netip.Prefix) *net.IPNet {
		return &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
	}
	fwd := netlink.NewRule()
	fwd.Priority, fwd.IifName, fwd.Table = guardForwardPriority, c.d.Interface, unix.RT_TABLE_MAIN
	fwd.Src, fwd.Dst = ipnet(subnet), ipnet(cluster)
	own := netlink.NewRule()
	own.Priority, own.IifName, own.Table = guardSubnetPriority, c.d.Interface, unix.RT_TABLE_MAIN
	own.Dst = ipnet(subnet)
	drop := netlink.NewRule()
	drop.Priority, drop.IifName, drop.Type = guardDropPriority, c.d.Interface, unix.FR_ACT_BLACKHOLE
	return []*netlink.Rule{fwd, own, drop}
}

// forwarding installs the client guard, then turns forwarding on for the TUN only. The
// caller holds c.mu.
func (c *Clients) forwarding() error {
	rules := c.guardRules(c.d.Subnet(), c.d.ClusterCIDR)
	hostnet.DelRules(rules) // a crashed agent's copies
	for _, r := range rules {
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, syscall.EEXIST) {
			hostnet.DelRules(rules)
			return fmt.Errorf("clients: routing rule %v: %w", r, err)
		}
	}
	c.rules = rules
	if err := hostnet.SetForwarding(c.d.Interface, true); err != nil {
		hostnet.DelRules(rules)
		c.rules = nil
		return fmt.Errorf("clients: %w", err)
	}
	return nil
}

// Stop removes the client guard (the TUN, and its forwarding setting, go with the
// datapath).
func (c *Clients) Stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	hostnet.DelRules(c.rules)
	c.rules = nil
	c.forward = false
}

// Moved follows a move of this host's subnet to sn: the client guard is rebuilt for the new
// subnet — the new rules first, then the old subnet's two, so the drop rule (the same in
// both) never lapses — and clients with addresses in the old subnet are reported: the other
// hosts now route that subnet to its new owner, so those clients need new configs (`weft
// client remove` and `add`).
func (c *Clients) Moved(sn netip.Prefix) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.rules != nil {
		rules := c.guardRules(sn, c.d.ClusterCIDR)
		for _, r := range rules {
			if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, syscall.EEXIST) {
				c.d.Log.Error("clients: guard for the new subnet", "rule", r.String(), "err", err)
			}
		}
		var old []*netlink.Rule
		for _, r := range c.rules {
			if !sameRule(r, rules) {
				old = append(old, r)
			}
		}
		hostnet.DelRules(old)
		c.rules = rules
	}
	c.reannounceLocked() // the clients still in sn, under its prefix
	var stale []string
	for _, wc := range c.list {
		if !sn.Contains(wc.Address) {
			stale = append(stale, wc.Name)
		}
	}
	if len(stale) > 0 {
		c.d.Log.Warn("this host's subnet moved: WireGuard clients have addresses in the old one; re-issue them", "subnet", sn, "clients", stale)
		c.d.Problem(fmt.Sprintf("subnet moved to %s: WireGuard clients %s have addresses in the old subnet; re-issue them (weft client remove NAME, weft client add NAME)", sn, strings.Join(stale, ", ")))
	}
}

// sameRule reports whether one of rules has r's priority and selectors.
func sameRule(r *netlink.Rule, rules []*netlink.Rule) bool {
	for _, n := range rules {
		if n.Priority == r.Priority && n.Type == r.Type && n.IifName == r.IifName && n.Table == r.Table &&
			n.Src.String() == r.Src.String() && n.Dst.String() == r.Dst.String() {
			return true
		}
	}
	return false
}
