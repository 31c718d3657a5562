package agent

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
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
