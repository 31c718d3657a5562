package cni

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"

	"github.com/containernetworking/plugins/pkg/ip"
	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
)

// ensureBridge returns the bridge, creating it if needed, with the gateway address gw/bits,
// the MTU, state up and IPv4 forwarding on (for this device only: packets that containers
// send to other hosts' subnets arrive here and leave through the TUN). Concurrent ADDs race
// to create it; the loser finds the winner's.
func ensureBridge(name string, gw netip.Addr, bits, mtu int) (*netlink.Bridge, error) {
	br, err := bridgeByName(name)
	if err != nil {
		if _, ok := err.(netlink.LinkNotFoundError); !ok {
			return nil, err
		}
		attrs := netlink.NewLinkAttrs()
		attrs.Name, attrs.MTU = name, mtu
		// A fixed MAC: without one a bridge takes its lowest port's, which changes as
		// containers come and go and leaves their ARP entries for the gateway stale.
		g := gw.As4()
		attrs.HardwareAddr = net.HardwareAddr{0x0a, 0x58, g[0], g[1], g[2], g[3]}
		nb := &netlink.Bridge{LinkAttrs: attrs}
		if err := netlink.LinkAdd(nb); err != nil && !errors.Is(err, syscall.EEXIST) {
			return nil, fmt.Errorf("create bridge %s: %w", name, err)
		}
		if br, err = bridgeByName(name); err != nil {
			return nil, err
		}
	}
	ipnet := &net.IPNet{IP: gw.AsSlice(), Mask: net.CIDRMask(bits, 32)}
	// An older gateway (the host's subnet moved) goes: its /24 route would keep pulling
	// another host's subnet onto this bridge.
	old, err := netlink.AddrList(br, netlink.FAMILY_V4)
	if err != nil {
		return nil, fmt.Errorf("addresses of bridge %s: %w", name, err)
	}
	for _, o := range old {
		if !o.IPNet.IP.Equal(ipnet.IP) || o.IPNet.Mask.String() != ipnet.Mask.String() {
			if err := netlink.AddrDel(br, &o); err != nil {
				return nil, fmt.Errorf("remove old gateway %s from %s: %w", o.IPNet, name, err)
			}
		}
	}
	if err := netlink.AddrReplace(br, &netlink.Addr{IPNet: ipnet}); err != nil {
		return nil, fmt.Errorf("address %s on bridge %s: %w", ipnet, name, err)
	}
	if err := netlink.LinkSetUp(br); err != nil {
		return nil, fmt.Errorf("set bridge %s up: %w", name, err)
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/conf/"+name+"/forwarding", []byte("1"), 0o644); err != nil {
		return nil, fmt.Errorf("enable forwarding on %s: %w", name, err)
	}
	return br, nil
}

func bridgeByName(name string) (*netlink.Bridge, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, err
	}
	br, ok := l.(*netlink.Bridge)
	if !ok {
		return nil, fmt.Errorf("%s exists and is a %s, not a bridge: remove it or set \"bridge\" in the conflist", name, l.Type())
	}
	return br, nil
}

// setupVeth creates the pair with ifName in the container's namespace and the host end in
// ours, attached to br; both take mtu. It returns both ends.
func setupVeth(netns ns.NetNS, br *netlink.Bridge, ifName string, mtu int) (host, cont net.Interface, err error) {
	hostNS, err := ns.GetCurrentNS()
	if err != nil {
		return host, cont, err
	}
	defer hostNS.Close()
	err = netns.Do(func(ns.NetNS) error {
		var err error
		host, cont, err = ip.SetupVeth(ifName, mtu, "", hostNS)
		return err
	})
	if err != nil {
		return host, cont, fmt.Errorf("create veth %s: %w", ifName, err)
	}
	hl, err := netlink.LinkByName(host.Name)
	if err != nil {
		return host, cont, fmt.Errorf("find host veth %s: %w", host.Name, err)
	}
	if err := netlink.LinkSetMaster(hl, br); err != nil {
		return host, cont, fmt.Errorf("attach %s to %s: %w", host.Name, br.Name, err)
	}
	// The MAC may change on attach (a bridge takes the lowest of its ports'): report the final.
	host.HardwareAddr = hl.Attrs().HardwareAddr
	return host, cont, nil
}
