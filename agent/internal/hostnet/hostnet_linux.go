package hostnet

import (
	"fmt"
	"os"

	"github.com/vishvananda/netlink"
)

// SetForwarding turns IPv4 forwarding on or off for one device.
func SetForwarding(dev string, on bool) error {
	v := []byte("0")
	if on {
		v = []byte("1")
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+dev+"/forwarding", v, 0o644); err != nil {
		return fmt.Errorf("forwarding on %s: %w", dev, err)
	}
	return nil
}

// DelRules removes rules, each as many times as a crashed agent may have left copies.
func DelRules(rules []*netlink.Rule) {
	for _, r := range rules {
		for i := 0; i < 8; i++ { // a crashed agent may have left copies
			if err := netlink.RuleDel(r); err != nil {
				break
			}
		}
	}
}
