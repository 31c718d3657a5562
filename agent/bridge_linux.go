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
		if err := a.masquerade(); err != nil {
			undo()
			return nil, err
		}
		undo = func() { delRules(rules); _ = nft([]byte("delete table ip " + masqTable + "\n")) }
	}
	return undo, nil
}

// masquerade replaces the weft-cni nftables table with one rule: containers' packets to
// outside the cluster CIDR leaving by any device but the bridge take the host's address.
func (a *Agent) masquerade() error {
	if _, err := exec.LookPath("nft"); err != nil {
		return errors.New("cni.ipmasq needs nft (install nftables) or set cni.ipmasq: false")
	}
	_ = nft([]byte("delete table ip " + masqTable + "\n"))
	script := fmt.Sprintf(`table ip %s {
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ip saddr %s ip daddr != %s oifname != "%s" masquerade
	}
}
`, masqTable, a.subnet.Masked(), a.cfg.ClusterCIDR.Prefix.Masked(), a.cfg.CNI.Bridge)
	if err := nft([]byte(script)); err != nil {
		return fmt.Errorf("cni.ipmasq: %w", err)
	}
	return nil
}

func nft(script []byte) error {
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = bytes.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nft: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}
