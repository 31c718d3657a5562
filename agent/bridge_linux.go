package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Priorities of the routing guard's two rules: before the main table's (32766).
const (
	guardAllowPriority = 32700
	guardDropPriority  = 32701
	masqTable          = "weft-cni"
)

func setForwarding(dev string, on bool) error {
	v := []byte("0")
	if on {
		v = []byte("1")
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+dev+"/forwarding", v, 0o644); err != nil {
		return fmt.Errorf("forwarding on %s: %w", dev, err)
	}
	return nil
}

// guardRules: what enters on the TUN and is not for a local address (the local table, at
// priority 0, answers those first) is routed only when it is for this host's subnet, and
// dropped silently otherwise, so no peer can use the host as a router to its underlay.
func (a *Agent) guardRules() []*netlink.Rule {
	allow := netlink.NewRule()
	allow.Priority, allow.IifName, allow.Table = guardAllowPriority, a.cfg.Interface, unix.RT_TABLE_MAIN
	allow.Dst = &net.IPNet{IP: a.subnet.Masked().Addr().AsSlice(), Mask: net.CIDRMask(a.subnet.Bits(), 32)}
	drop := netlink.NewRule()
	drop.Priority, drop.IifName, drop.Type = guardDropPriority, a.cfg.Interface, unix.FR_ACT_BLACKHOLE
	return []*netlink.Rule{allow, drop}
}

func delRules(rules []*netlink.Rule) {
	for _, r := range rules {
		for i := 0; i < 8; i++ { // a crashed agent may have left copies
			if err := netlink.RuleDel(r); err != nil {
				break
			}
		}
	}
}

// hostForwarding turns forwarding on for the TUN (and the bridge if the plugin made it
// already), installs the guard and, with cni.ipmasq, the masquerade table.
func (a *Agent) hostForwarding() (func(), error) {
	rules := a.guardRules()
	delRules(rules)
	for _, r := range rules {
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, syscall.EEXIST) {
			delRules(rules)
			return nil, fmt.Errorf("cni: routing rule %v: %w", r, err)
		}
	}
	undo := func() { delRules(rules) }
	if err := setForwarding(a.cfg.Interface, true); err != nil {
		undo()
		return nil, fmt.Errorf("cni: %w", err)
	}
	if _, err := netlink.LinkByName(a.cfg.CNI.Bridge); err == nil {
		if err := setForwarding(a.cfg.CNI.Bridge, true); err != nil {
			undo()
			return nil, fmt.Errorf("cni: %w", err)
		}
	}
	if a.cfg.CNI.IPMasq {
		stop, err := a.masquerade()
		if err != nil {
			undo()
			return nil, err
		}
		undo = func() { stop(); delRules(rules) }
	}
	return undo, nil
}

// masquerade replaces the weft-cni nftables table: containers' packets to outside the
// cluster CIDR leaving by any device but the bridge take the host's address. The replies
// come back on the uplink, whichever it is, so that device must forward too: when the host
// forwards nothing yet, the agent turns forwarding on for all devices and the same table
// lets the others forward only replies (established, related) and the runtime's port
// mappings (DNAT), so the host does not become a router for its LAN; on a host that already
// forwards (a router, a Kubernetes node) it leaves forwarding as the operator set it.
func (a *Agent) masquerade() (func(), error) {
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
`, a.cfg.CNI.Bridge, a.cfg.Interface)
	}
	_ = nft([]byte("delete table ip " + masqTable + "\n"))
	script := fmt.Sprintf(`table ip %s {
%s	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %s ip daddr != %s oifname != "%s" masquerade
	}
}
`, masqTable, forward, a.subnet.Masked(), a.cfg.ClusterCIDR.Prefix.Masked(), a.cfg.CNI.Bridge)
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
