package containers

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/weftnet/weft/agent/internal/hostnet"
)

// Priorities of the routing guard's two rules: before the main table's (32766).
const (
	guardAllowPriority = 32700
	guardDropPriority  = 32701
	masqTable          = "weft-cni"
)

// guardRules: what enters on the TUN and is not for a local address (the local table, at
// priority 0, answers those first) is routed only when it is for this host's subnet, and
// dropped silently otherwise, so no peer can use the host as a router to its underlay.
func (c *Containers) guardRules(subnet netip.Prefix) []*netlink.Rule {
	allow := netlink.NewRule()
	allow.Priority, allow.IifName, allow.Table = guardAllowPriority, c.d.Interface, unix.RT_TABLE_MAIN
	allow.Dst = &net.IPNet{IP: subnet.Masked().Addr().AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}
	drop := netlink.NewRule()
	drop.Priority, drop.IifName, drop.Type = guardDropPriority, c.d.Interface, unix.FR_ACT_BLACKHOLE
	return []*netlink.Rule{allow, drop}
}

// hostForwarding turns forwarding on for the TUN (and the bridge if the plugin made it
// already), installs the guard and, with cni.ipmasq, the masquerade table.
func (c *Containers) hostForwarding() (func(), error) {
	if err := c.retarget(); err != nil {
		return nil, err
	}
	rules := func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		hostnet.DelRules(c.rules)
		c.rules = nil
	}
	undo := rules
	if err := hostnet.SetForwarding(c.d.Interface, true); err != nil {
		undo()
		return nil, fmt.Errorf("cni: %w", err)
	}
	if _, err := netlink.LinkByName(c.d.Bridge); err == nil {
		if err := hostnet.SetForwarding(c.d.Bridge, true); err != nil {
			undo()
			return nil, fmt.Errorf("cni: %w", err)
		}
	}
	if c.d.IPMasq {
		stop, err := c.masquerade(c.d.Subnet())
		if err != nil {
			undo()
			return nil, err
		}
		c.mu.Lock()
		c.masq = true
		c.mu.Unlock()
		undo = func() { stop(); rules() }
	}
	return undo, nil
}

// retarget installs the guard (and the masquerade, with cni.ipmasq) for the current subnet,
// replacing those of an earlier one.
func (c *Containers) retarget() error {
	subnet := c.d.Subnet()
	rules := c.guardRules(subnet)
	c.mu.Lock()
	defer c.mu.Unlock()
	hostnet.DelRules(c.rules)
	hostnet.DelRules(rules) // a crashed agent's copies
	c.rules = nil
	for _, r := range rules {
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, syscall.EEXIST) {
			hostnet.DelRules(rules)
			return fmt.Errorf("cni: routing rule %v: %w", r, err)
		}
	}
	c.rules = rules
	if c.d.IPMasq && c.masq {
		if _, err := c.masquerade(subnet); err != nil {
			return err
		}
	}
	return nil
}

// masquerade replaces the weft-cni nftables table: containers' packets to outside the
// cluster CIDR leaving by any device but the bridge take the host's address. The replies
// come back on the uplink, whichever it is, so that device must forward too: when the host
// forwards nothing yet, the agent turns forwarding on for all devices and the same table
// lets the others forward only replies (established, related) and the runtime's port
// mappings (DNAT), so the host does not become a router for its LAN; on a host that already
// forwards (a router, a Kubernetes node) it leaves forwarding as the operator set it.
func (c *Containers) masquerade(subnet netip.Prefix) (func(), error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, errors.New("cni.ipmasq needs nft (install nftables) or set cni.ipmasq: false")
	}
	const all = "/proc/sys/net/ipv4/conf/all/forwarding"
	cur, err := os.ReadFile(all)
	if err != nil {
		return nil, fmt.Errorf("cni.ipmasq: %w", err)
	}
	// Ours when off now, or when a crashed agent of ours turned it on (its table is left).
	ownForwarding := bytes.Equal(bytes.TrimSpace(cur), []byte("0")) ||
		exec.Command("nft", "list", "chain", "ip", masqTable, "forward").Run() == nil
	forward := ""
	if ownForwarding {
		forward = fmt.Sprintf(`	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname { "%s", "%s" } accept
		ct state established,related accept
		ct status dnat accept
		drop
	}
`, c.d.Bridge, c.d.Interface)
	}
	_ = nft([]byte("delete table ip " + masqTable + "\n"))
	script := fmt.Sprintf(`table ip %s {
%s	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %s ip daddr != %s oifname != "%s" masquerade
	}
}
`, masqTable, forward, subnet.Masked(), c.d.ClusterCIDR.Masked(), c.d.Bridge)
	if err := nft([]byte(script)); err != nil {
		return nil, fmt.Errorf("cni.ipmasq: %w", err)
	}
	stop := func() { _ = nft([]byte("delete table ip " + masqTable + "\n")) }
	if ownForwarding {
		if err := os.WriteFile(all, []byte("1"), 0o644); err != nil {
			stop()
			return nil, fmt.Errorf("cni.ipmasq: forwarding: %w", err)
		}
		stop = func() {
			_ = os.WriteFile(all, []byte("0"), 0o644)
			_ = nft([]byte("delete table ip " + masqTable + "\n"))
		}
	}
	return stop, nil
}

func nft(script []byte) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = bytes.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
