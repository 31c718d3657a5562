package agent

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
)

// configureLink gives the device its overlay address, MTU and state up. The address carries
// the cluster CIDR's prefix length, so the kernel's connected route sends the whole overlay
// range into the device (and never to the underlay's default route, even for a subnet whose
// host has gone: those packets are dropped and counted by the datapath).
func configureLink(name string, addr netip.Addr, bits int, mtu int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find device %s: %w", name, err)
	}
	if mtu > 0 {
		if err := netlink.LinkSetMTU(link, mtu); err != nil {
			return fmt.Errorf("set mtu %d on %s: %w", mtu, name, err)
		}
	}
	ipnet := &net.IPNet{IP: addr.AsSlice(), Mask: net.CIDRMask(bits, addr.BitLen())}
	if err := netlink.AddrReplace(link, &netlink.Addr{IPNet: ipnet}); err != nil {
		return fmt.Errorf("address %s/%d on %s: %w", addr, bits, name, err)
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return fmt.Errorf("set %s up: %w", name, err)
	}
	return nil
}

// addRoute routes prefix into the device (static peers' prefixes outside the cluster CIDR).
func addRoute(name string, p netip.Prefix) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find device %s: %w", name, err)
	}
	dst := &net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
	if err := netlink.RouteReplace(&netlink.Route{LinkIndex: link.Attrs().Index, Dst: dst}); err != nil {
		return fmt.Errorf("route %s dev %s: %w", p, name, err)
	}
	return nil
}

// moveAddress replaces the device's overlay address old with addr. The old one goes first:
// both share the cluster CIDR's prefix, so the new one would be a secondary address, and the
// kernel deletes secondaries together with their primary.
func moveAddress(name string, old, addr netip.Addr, bits int) error {
	link, err := netlink.LinkByName(name)
	if err != nil {
		return fmt.Errorf("find device %s: %w", name, err)
	}
	if old.IsValid() {
		ipnet := &net.IPNet{IP: old.AsSlice(), Mask: net.CIDRMask(bits, old.BitLen())}
		if err := netlink.AddrDel(link, &netlink.Addr{IPNet: ipnet}); err != nil {
			return fmt.Errorf("remove address %s/%d from %s: %w", old, bits, name, err)
		}
	}
	return configureLink(name, addr, bits, 0)
}
