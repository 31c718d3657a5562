package agent

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"sync"
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

// containerNet is the agent's container-networking state: the guard rules in force.
type containerNet struct {
	mu    sync.Mutex
	rules []*netlink.Rule
	masq  bool // the masquerade table is installed (retarget replaces it)
}

// guardRules: what enters on the TUN and is not for a local address (the local table, at
// priority 0, answers those first) is routed only when it is for this host's subnet, and
// dropped silently otherwise, so no peer can use the host as a router to its underlay.
func (a *Agent) guardRules(subnet netip.Prefix) []*netlink.Rule {
	allow := netlink.NewRule()
	allow.Priority, allow.IifName, allow.Table = guardAllowPriority, a.cfg.Interface, unix.RT_TABLE_MAIN
	allow.Dst = &net.IPNet{IP: subnet.Masked().Addr().AsSlice(), Mask: net.CIDRMask(subnet.Bits(), 32)}
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
	if err := a.retarget(); err != nil {
		return nil, err
	}
	rules := func() {
		a.ctr.mu.Lock()
		defer a.ctr.mu.Unlock()
		delRules(a.ctr.rules)
		a.ctr.rules = nil
	}
	undo := rules
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
		stop, err := a.masquerade(a.currentSubnet())
		if err != nil {
			undo()
			return nil, err
		}
		a.ctr.mu.Lock()
		a.ctr.masq = true
		a.ctr.mu.Unlock()
		undo = func() { stop(); rules() }
	}
	return undo, nil
}

// retarget installs the guard (and the masquerade, with cni.ipmasq) for the current subnet,
// replacing those of an earlier one.
func (a *Agent) retarget() error {
	subnet := a.currentSubnet()
	rules := a.guardRules(subnet)
	a.ctr.mu.Lock()
	defer a.ctr.mu.Unlock()
	delRules(a.ctr.rules)
	delRules(rules) // a crashed agent's copies
	a.ctr.rules = nil
	for _, r := range rules {
		if err := netlink.RuleAdd(r); err != nil && !errors.Is(err, syscall.EEXIST) {
			delRules(rules)
			return fmt.Errorf("cni: routing rule %v: %w", r, err)
		}
	}
	a.ctr.rules = rules
	if a.cfg.CNI.IPMasq && a.ctr.masq {
		if _, err := a.masquerade(subnet); err != nil {
			return err
		}
	}
	return nil
}

func (a *Agent) currentSubnet() netip.Prefix {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.subnet
}

// masquerade replaces the weft-cni nftables table: containers' packets to outside the
// cluster CIDR leaving by any device but the bridge take the host's address. The replies
// come back on the uplink, whichever it is, so that device must forward too: when the host
// forwards nothing yet, the agent turns forwarding on for all devices and the same table
// lets the others forward only replies (established, related) and the runtime's port
// mappings (DNAT), so the host does not become a router for its LAN; on a host that already
// forwards (a router, a Kubernetes node) it leaves forwarding as the operator set it.
func (a *Agent) masquerade(subnet netip.Prefix) (func(), error) {
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
`, masqTable, forward, subnet.Masked(), a.cfg.ClusterCIDR.Prefix.Masked(), a.cfg.CNI.Bridge)
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
