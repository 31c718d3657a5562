package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Priorities of the client guard: before the CNI guard's (32700) and the main table's.
const (
	clientGuardForwardPriority = 32690 // from a client (the host's /24) to the overlay
	clientGuardSubnetPriority  = 32691 // to the host's /24 (replies to clients)
	clientGuardDropPriority    = 32692 // anything else that entered on the TUN
)

// clientGuardRules: with forwarding on for the TUN, what enters on it and is not for a
// local address is routed only from a client to the cluster CIDR or to this host's subnet
// (a client), and dropped otherwise: no client or peer can use the host as a router to its
// underlay or beyond. A source in this host's /24 arriving on the TUN can only be a client:
// the tunnel's cryptokey routing accepts it from no one else.
func (a *Agent) clientGuardRules(subnet, cluster netip.Prefix) []*netlink.Rule {
	ipnet := func(p netip.Prefix) *net.IPNet {
		return &net.IPNet{IP: p.Masked().Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), 32)}
	}
	fwd := netlink.NewRule()
	fwd.Priority, fwd.IifName, fwd.Table = clientGuardForwardPriority, a.cfg.Interface, unix.RT_TABLE_MAIN
	fwd.Src, fwd.Dst = ipnet(subnet), ipnet(cluster)
	own := netlink.NewRule()
	own.Priority, own.IifName, own.Table = clientGuardSubnetPriority, a.cfg.Interface, unix.RT_TABLE_MAIN
	own.Dst = ipnet(subnet)
	drop := netlink.NewRule()
	drop.Priority, drop.IifName, drop.Type = clientGuardDropPriority, a.cfg.Interface, unix.FR_ACT_BLACKHOLE
	return []*netlink.Rule{fwd, own, drop}
}

// clientForwarding installs the client guard, then turns forwarding on for the TUN only.
func (a *Agent) clientForwarding() error {
	a.mu.Lock()
	subnet := a.subnet
	a.mu.Unlock()
	rules := a.clientGuardRules(subnet, a.cfg.ClusterCIDR.Prefix)
	delRules(rules) // a crashed agent's copies
	for _, r := range rules {
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, syscall.EEXIST) {
			delRules(rules)
			return fmt.Errorf("clients: routing rule %v: %w", r, err)
		}
	}
	a.cl.rules = rules
	if err := setForwarding(a.cfg.Interface, true); err != nil {
		delRules(rules)
		a.cl.rules = nil
		return fmt.Errorf("clients: %w", err)
	}
	return nil
}

// stopClients removes the client guard (the TUN, and its forwarding setting, go with the
// datapath).
func (a *Agent) stopClients() {
	a.cl.mu.Lock()
	defer a.cl.mu.Unlock()
	delRules(a.cl.rules)
	a.cl.rules = nil
	a.cl.forward = false
}

// clientsMoved follows a move of this host's subnet (onSubnetChanged): the client guard is
// rebuilt for the new subnet — the new rules first, then the old subnet's two, so the drop
// rule (the same in both) never lapses — and clients with addresses in the old subnet are
// reported: the other hosts now route that subnet to its new owner, so those clients need
// new configs (`weft client remove` and `add`).
func (a *Agent) clientsMoved(sn netip.Prefix) {
	a.cl.mu.Lock()
	defer a.cl.mu.Unlock()
	if a.cl.rules != nil {
		rules := a.clientGuardRules(sn, a.cfg.ClusterCIDR.Prefix)
		for _, r := range rules {
			if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, syscall.EEXIST) {
				a.log.Error("clients: guard for the new subnet", "rule", r.String(), "err", err)
			}
		}
		var old []*netlink.Rule
		for _, r := range a.cl.rules {
			if !sameRule(r, rules) {
				old = append(old, r)
			}
		}
		delRules(old)
		a.cl.rules = rules
	}
	var stale []string
	for _, c := range a.cl.list {
		if !sn.Contains(c.Address) {
			stale = append(stale, c.Name)
		}
	}
	if len(stale) > 0 {
		a.log.Warn("this host's subnet moved: WireGuard clients have addresses in the old one; re-issue them", "subnet", sn, "clients", stale)
		a.problem(fmt.Sprintf("subnet moved to %s: WireGuard clients %s have addresses in the old subnet; re-issue them (weft client remove NAME, weft client add NAME)", sn, strings.Join(stale, ", ")))
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
